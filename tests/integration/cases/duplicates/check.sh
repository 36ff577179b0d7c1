# The same request again: everything is a duplicate, still 200.
tt_post "$CASE_DIR/request"
assert_eq "$STATUS" 200 "status of the repeated request"
assert_json_eq "$BODY" '{"accepted":0,"duplicates":4,"rejected":0,"errors":[]}' "repeated request"
assert_eq "$(tt_events | grep -c .)" 3 "events stored after the repeat"
assert_eq "$(tt_metric 'tokentrail_events_duplicate_total{type="token.revoked"}')" 4 "duplicate counter, token.revoked"
assert_eq "$(tt_metric 'tokentrail_events_duplicate_total{type="incident.resolved"}')" 1 "duplicate counter, incident.resolved"
