#!/usr/bin/env bash
# t_sigterm_at_startup.sh - SIGTERM as soon as the port file appears must be
# a graceful shutdown (exit 0), for the collector and the analyzer: the port
# file is the readiness signal that supervisors and tests wait for.
#
# Pins a bug (in both): collect writes the port file before it installs its SIGTERM
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

# sigterm_at_start NAME PORT_FILE CMD...: start CMD with its stderr on a full
# pipe, SIGTERM it once PORT_FILE appears, then drain the pipe. Sets rc (the
# exit status, or "timeout") and leaves stderr in $TT_TMP/NAME.stderr.
sigterm_at_start() {
    local name=$1 port_file=$2
    shift 2
    exec 3<>"$fifo"                 # read-write: opening does not block
    head -c 65536 /dev/zero >&3     # fill the pipe (64 KiB): the next write blocks
    "$@" </dev/null >/dev/null 2>&3 &
    local pid=$!
    TT_PIDS+=("$pid")
    echo "$pid" >>"$TT_TMP/pids"
    local deadline=$((SECONDS + 10))
    until [ -s "$port_file" ] || [ "$SECONDS" -ge "$deadline" ]; do
        sleep 0.02
    done
    assert_eq "$( [ -s "$port_file" ] && echo yes)" yes "$name: port file written"
    sleep 0.2
    kill -TERM "$pid"
    sleep 0.2
    # Drain stderr so that a process that handles the signal can go on.
    timeout 20 cat <&3 >"$TT_TMP/$name.stderr" &
    local cat_pid=$!
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
    tr -d '\0' <"$TT_TMP/$name.stderr" | sed "s/^/# $name: /"
}

sigterm_at_start collector "$dir/port" \
    "$TT_BIN" collect --listen 127.0.0.1:0 --db "$dir/tt.db" --port-file "$dir/port"
assert_eq "$rc" 0 "collector: exit status on SIGTERM right after the port file appeared"
assert_contains "$(tr -d '\0' <"$TT_TMP/collector.stderr")" "store closed" "collector: shutdown log"

# The analyzer (following the store the collector left) announces itself the
# same way: port file, then a log line.
sigterm_at_start analyzer "$dir/aport" \
    "$TT_BIN" analyze --db "$dir/tt.db" --policy "$TT_ROOT/analyzers/policies/example.yaml" \
    --listen 127.0.0.1:0 --port-file "$dir/aport"
assert_eq "$rc" 0 "analyzer: exit status on SIGTERM right after the port file appeared"
assert_contains "$(tr -d '\0' <"$TT_TMP/analyzer.stderr")" "checkpointing and stopping" \
    "analyzer: shutdown log"
tt_done
