#!/usr/bin/env bash
# t_concurrent_groups.sh - 32 concurrent clients each post 200 single events:
# every answer is 200, exactly 6,400 events are stored, and group commit
# merged them into fewer than 6,400 commits.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
out=$(python3 "$TT_IDIR/loadclient.py" load "$TT_PORT" --workers 32 --count-per-worker 200 \
    --singles-only --duration 120 --prefix cg --acked "$TT_TMP/acked" --sent "$TT_TMP/sent")
note "$out"
assert_contains "$out" "requests 6400 " "requests made"
assert_contains "$out" "acked events 6400," "events acknowledged"
assert_contains "$out" "statuses: 200=6400" "every answer 200"

assert_eq "$(tt_events | jq -r .id | sort -u | grep -c .)" 6400 "distinct events stored"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM events')" 6400 "rows stored"
assert_eq "$(comm -3 <(sort "$TT_TMP/acked") <(tt_events | jq -r .id | sort) | grep -c .)" 0 "acked and stored ids differ"

commits=$(tt_metric tokentrail_store_commits_total)
note "6400 events in $commits commits"
assert_lt "$commits" 6400 "store commits for 6400 single-event requests"
assert_eq "$(tt_metric tokentrail_store_commit_duration_seconds_count)" "$commits" "commit histogram count"
accepted=0
for t in token.issued token.used token.revoked incident.opened; do
    accepted=$((accepted + $(tt_metric "tokentrail_events_accepted_total{type=\"$t\"}")))
done
assert_eq "$accepted" 6400 "accepted counters, summed over types"
assert_eq "$(tt_metric 'tokentrail_http_requests_total{code="200"}')" 6400 "200 answers counted"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
