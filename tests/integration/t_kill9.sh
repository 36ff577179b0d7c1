#!/usr/bin/env bash
# t_kill9.sh - durability under a crash: 16 clients post unique events, the
# collector is killed with SIGKILL mid-load, restarted on the same database,
# and every event whose request was acknowledged (2xx) must be there, once.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
acked=$TT_TMP/acked
sent=$TT_TMP/sent
: >"$acked"
: >"$sent"

python3 "$TT_IDIR/loadclient.py" load "$TT_PORT" --workers 16 --duration 30 \
    --acked "$acked" --sent "$sent" --prefix k9 >"$TT_TMP/load.out" 2>&1 &
load_pid=$!
sleep 2
n_before=$(grep -c . "$acked")
tt_kill9
note "killed the collector after 2 s of load ($n_before events acked by then)"
# The clients see refused connections and stop.
if ! tt_wait_exit "$load_pid" 20; then
    kill "$load_pid"
    wait "$load_pid"
    fail "load client still running 20 s after the collector died"
fi
cat "$TT_TMP/load.out"
assert_eq "$TT_WAIT_RC" 0 "load client exit status"
assert_lt 100 "$(grep -c . "$acked")" "events acked before the crash (load too small to mean anything?)"

tt_restart || exit 1
tt_get /readyz
assert_eq "$STATUS" 200 "/readyz after restart"

tt_events >"$TT_TMP/stored.ndjson"
jq -r .id "$TT_TMP/stored.ndjson" | sort >"$TT_TMP/stored.ids"
sort -u "$acked" >"$TT_TMP/acked.ids"
sort -u "$sent" >"$TT_TMP/sent.ids"
n_acked=$(grep -c . "$TT_TMP/acked.ids")
n_stored=$(grep -c . "$TT_TMP/stored.ids")
n_sent=$(grep -c . "$TT_TMP/sent.ids")
missing=$(comm -23 "$TT_TMP/acked.ids" "$TT_TMP/stored.ids")
extra=$(comm -13 "$TT_TMP/acked.ids" "$TT_TMP/stored.ids" | grep -c .)
phantom=$(comm -13 "$TT_TMP/sent.ids" "$TT_TMP/stored.ids")
note "sent $n_sent, acked $n_acked, stored $n_stored, unacked-but-stored $extra"

assert_eq "$(grep -c . "$acked")" "$n_acked" "acked ids are unique (test precondition)"
assert_eq "$(printf '%s' "$missing" | grep -c .)" 0 "acked events missing after the crash"
[ -n "$missing" ] && printf 'missing: %s\n' $missing | head -20 >&2
assert_eq "$(uniq -d "$TT_TMP/stored.ids" | grep -c .)" 0 "events stored more than once"
assert_eq "$(printf '%s' "$phantom" | grep -c .)" 0 "stored events that were never sent"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM events')" "$n_stored" "rows in the events table"
assert_eq "$(sqlite3 "$TT_DB" 'PRAGMA integrity_check')" ok "sqlite integrity_check"
# In flight at the kill: sent but not acked. Some may be stored, at most those.
assert_le "$extra" $((n_sent - n_acked)) "unacked-but-stored events"

# Acked events sent again after the restart are duplicates.
mapfile -t some < <(shuf -n 7 --random-source=<(yes) "$TT_TMP/acked.ids")
out=$(python3 "$TT_IDIR/loadclient.py" resend "$TT_PORT" "${some[@]}")
assert_json_eq "$out" '{"status":200,"body":{"accepted":0,"duplicates":7,"rejected":0,"errors":[]}}' "re-sent acked events"
assert_eq "$(tt_events | grep -c .)" "$n_stored" "stored events after the re-send"

# And the restarted collector takes new load and shuts down cleanly.
python3 "$TT_IDIR/loadclient.py" load "$TT_PORT" --workers 4 --count-per-worker 25 \
    --acked "$TT_TMP/acked2" --sent "$TT_TMP/sent2" --prefix after >/dev/null
assert_eq "$(comm -23 <(sort "$TT_TMP/acked2") <(tt_events | jq -r .id | sort) | grep -c .)" 0 "acked after restart but missing"
tt_stop
assert_eq "$TT_RC" 0 "exit status of the restarted collector"
tt_done
