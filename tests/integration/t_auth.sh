#!/usr/bin/env bash
# t_auth.sh - ingest bearer tokens: two token files (rotation) both accepted,
# a wrong or missing token is 401 with WWW-Authenticate, health unauthenticated.
set -u
. "$(dirname "$0")/lib.sh"

old=$TT_TMP/old.tokens
new=$TT_TMP/new.tokens
printf '# the token being retired\nold-ingest-token-AAAA\n' >"$old"
printf '\n  new-ingest-token-BBBB  \n' >"$new"   # blank line and padding are ignored
tt_start --ingest-token-file "$old" --ingest-token-file "$new" || exit 1

ev() { tt_ev_issued "$1"; }

ev a1 >"$TT_TMP/a1"
tt_post "$TT_TMP/a1" -H 'Authorization: Bearer old-ingest-token-AAAA'
assert_eq "$STATUS" 200 "old token"
assert_jq "$BODY" '.accepted == 1' "old token response"

ev a2 >"$TT_TMP/a2"
tt_post "$TT_TMP/a2" -H 'Authorization: Bearer new-ingest-token-BBBB'
assert_eq "$STATUS" 200 "new token"
assert_jq "$BODY" '.accepted == 1' "new token response"

ev a3 >"$TT_TMP/a3"
hdr=$TT_TMP/h
for auth in 'Authorization: Bearer wrong-token' 'Authorization: Bearer old-ingest-token-AAA' \
    'Authorization: Bearer old-ingest-token-AAAAx' 'Authorization: Basic b2xkOnB3' \
    'Authorization: Bearer ' 'Authorization: bearer  new-ingest-token-BBBBB'; do
    tt_post "$TT_TMP/a3" -H "$auth" -D "$hdr"
    assert_eq "$STATUS" 401 "status with '$auth'"
    assert_json_eq "$BODY" '{"error":"unauthorized: send Authorization: Bearer <ingest token>"}' "401 body"
    assert_contains "$(tr -d '\r' <"$hdr")" 'WWW-Authenticate: Bearer realm="tokentrail"' "401 headers"
done

tt_post "$TT_TMP/a3" -D "$hdr"
assert_eq "$STATUS" 401 "status without Authorization"
assert_contains "$(tr -d '\r' <"$hdr")" 'WWW-Authenticate: Bearer' "401 headers without Authorization"

# The scheme name is case-insensitive (RFC 7235).
tt_post "$TT_TMP/a3" -H 'Authorization: bearer new-ingest-token-BBBB'
assert_eq "$STATUS" 200 "lower-case 'bearer' scheme"

# The raw ingest tokens never reach the log.
assert_eq "$(grep -c 'ingest-token-' "$TT_LOG")" 0 "log lines with an ingest token"

for p in /healthz /readyz /metrics; do
    tt_get "$p"
    assert_eq "$STATUS" 200 "GET $p without a token"
done
assert_eq "$(tt_metric 'tokentrail_http_requests_total{code="401"}')" 7 "401 counter"
assert_eq "$(tt_events | jq -r .id | sort | tr '\n' ' ')" "a1 a2 a3 " "stored ids"

tt_stop
assert_eq "$TT_RC" 0 "exit status"

# A token file without tokens is a start-up error, not an open door.
printf '# nothing here\n\n' >"$TT_TMP/empty.tokens"
out=$(timeout 10 "$TT_BIN" collect --listen 127.0.0.1:0 --db "$TT_TMP/x.db" --ingest-token-file "$TT_TMP/empty.tokens" 2>&1)
rc=$?
assert_ne "$rc" 0 "exit status with an empty token file"
assert_contains "$out" "hold no token" "empty token file message"
tt_done
