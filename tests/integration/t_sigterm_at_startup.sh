#!/usr/bin/env bash
# t_sigterm_at_startup.sh - SIGTERM as soon as the port file appears must be
# a graceful shutdown (exit 0): the port file is the readiness signal that
# supervisors and tests wait for.
#
# Pins a bug: collect writes the port file before it installs its SIGTERM
# handler (and logs a line in between), so a SIGTERM in that window kills it
# by the default action: exit status 143, no "store closed". In plain runs
# about 1-5% of immediate SIGTERMs hit the window; here stderr is a pipe that
# is full, so the start-up log line blocks and the window stays open until we
# drain the pipe, which makes the outcome deterministic.
set -u
. "$(dirname "$0")/lib.sh"

dir=$TT_TMP/startup
mkdir -p "$dir"
fifo=$TT_TMP/stderr.fifo
mkfifo "$fifo"
exec 3<>"$fifo"                 # read-write: opening does not block
head -c 65536 /dev/zero >&3     # fill the pipe (64 KiB): the next write blocks

"$TT_BIN" collect --listen 127.0.0.1:0 --db "$dir/tt.db" --port-file "$dir/port" \
    </dev/null >/dev/null 2>&3 &
pid=$!
TT_PIDS+=("$pid")
echo "$pid" >>"$TT_TMP/pids"
deadline=$((SECONDS + 10))
until [ -s "$dir/port" ] || [ "$SECONDS" -ge "$deadline" ]; do
    sleep 0.02
done
assert_eq "$( [ -s "$dir/port" ] && echo yes)" yes "port file written"
sleep 0.2
kill -TERM "$pid"
sleep 0.2
# Drain stderr so that a collector that handles the signal can go on.
timeout 20 cat <&3 >"$TT_TMP/stderr.txt" &
cat_pid=$!
if tt_wait_exit "$pid" 15; then
    rc=$TT_WAIT_RC
else
    kill -KILL "$pid"
    wait "$pid"
    rc=timeout
fi
_tt_forget "$pid"
exec 3>&-
kill "$cat_pid" 2>/dev/null
wait "$cat_pid" 2>/dev/null
tr -d '\0' <"$TT_TMP/stderr.txt" | sed 's/^/# collector: /'
assert_eq "$rc" 0 "exit status on SIGTERM right after the port file appeared"
assert_contains "$(tr -d '\0' <"$TT_TMP/stderr.txt")" "store closed" "shutdown log"
tt_done
