#!/usr/bin/env bash
# t_sigterm.sh - graceful shutdown: SIGTERM while a ~5 MB request is still
# uploading; that request completes with 200 and its events are stored, new
# connections are refused after the signal, and the exit status is 0.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1

# ~5 MB of NDJSON: 20,000 unique token.used events.
python3 - "$TT_TMP/big.ndjson" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(20000):
        f.write('{"specversion":"1.0","id":"slow-%05d","source":"gw","type":"token.used",'
                '"time":"2026-11-22T07:%02d:%02dZ","data":{"token_id":"tok-slow","resource":"db:orders",'
                '"method":"GET","path":"/orders/%05d/items?padding=%s","status":200}}\n'
                % (i, i // 60 % 60, i % 60, i, "p" * 60))
PY
size=$(wc -c <"$TT_TMP/big.ndjson")
note "request body: $size bytes"
assert_lt 4500000 "$size" "body size (test precondition)"

# ~2 MB/s: the upload takes about 2.5 s.
curl -s --max-time 60 --limit-rate 2M -o "$TT_TMP/slow.body" -w '%{http_code}' \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$TT_TMP/big.ndjson" \
    "$TT_URL/v1/events" >"$TT_TMP/slow.status" 2>"$TT_TMP/slow.err" &
curl_pid=$!

# Wait until the upload is under way (the request is in flight) ...
deadline=$((SECONDS + 10))
while [ "$(tt_metric tokentrail_http_requests_in_flight)" != 1 ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.05
done
sleep 0.5
assert_eq "$(tt_metric tokentrail_http_requests_in_flight)" 1 "requests in flight before SIGTERM"
pass
_tt_alive "$curl_pid" || fail "the slow upload finished before SIGTERM (test precondition)"

# ... then SIGTERM mid-upload.
kill -TERM "$TT_PID"
sleep 0.3
pass
_tt_alive "$curl_pid" || fail "the slow upload was not in flight 0.3 s after SIGTERM (precondition)"
_tt_alive "$TT_PID" || fail "the collector exited with a request still in flight"

# New connections are refused while the old request finishes.
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$TT_URL/healthz")
rc=$?
assert_eq "$code" 000 "HTTP status of a new connection after SIGTERM"
assert_eq "$rc" 7 "curl exit status of a new connection after SIGTERM (7 = connection refused)"
tt_ev_issued late >"$TT_TMP/late"
tt_post "$TT_TMP/late"
assert_eq "$STATUS" 000 "a new POST after SIGTERM"

wait "$curl_pid"
assert_eq "$?" 0 "curl exit status of the in-flight upload"
assert_eq "$(cat "$TT_TMP/slow.status")" 200 "HTTP status of the in-flight upload"
assert_json_eq "$(cat "$TT_TMP/slow.body")" '{"accepted":20000,"duplicates":0,"rejected":0,"errors":[]}' "in-flight upload response"

if tt_wait_exit "$TT_PID" 15; then
    assert_eq "$TT_WAIT_RC" 0 "exit status after SIGTERM"
else
    fail "collector still running 15 s after SIGTERM"
fi
_tt_forget "$TT_PID"
assert_contains "$(cat "$TT_LOG")" "no longer accepting" "shutdown log"
assert_contains "$(cat "$TT_LOG")" "store closed" "shutdown log"
assert_eq "$(tt_events --token tok-slow | grep -c .)" 20000 "stored events of the in-flight upload"
assert_eq "$(tt_events | jq -r .id | grep -c late)" 0 "events from the refused POST"
tt_done
