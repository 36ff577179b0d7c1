#!/usr/bin/env bash
# t_kafka_cap.sh - regression: the outbox cap (kafka.outbox_max_events)
# counted every event of a request, duplicates included: with a cap of 300 a
# POST of 301 new events got 503 + Retry-After forever, 200 stored + 150 new
# got 503 with an empty outbox, and 350 pure duplicates got 503. Now only new
# events count; a retry of stored events gets 200 (duplicates) even at the
# cap; a request with more new events than the cap can ever hold gets 413
# naming the cap; and a request that does not fit now still gets 503 with
# nothing of it stored.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

# gen PREFIX FROM TO: token.issued events PREFIX<FROM>..PREFIX<TO>.
gen() {
    local i
    for i in $(seq "$2" "$3"); do
        tt_ev_issued "$1$i"
    done
}

tk_start
tk_topic tt.cap 3
cap=$TT_TMP/cap.yaml
printf 'kafka:\n  outbox_max_events: 300\n  flush_timeout: 500ms\n' >"$cap"

# ---- Kafka up: the outbox drains, only new events count ----
tt_start --kafka-brokers "$TK_BS" --kafka-topic tt.cap --config "$cap" || exit 1
gen a 0 199 >"$TT_TMP/a"
tt_post "$TT_TMP/a"
assert_eq "$STATUS" 200 "200 new"
tk_wait_outbox_empty 30

cat "$TT_TMP/a" <(gen b 0 149) >"$TT_TMP/ab"
tt_post "$TT_TMP/ab"
assert_eq "$STATUS" 200 "200 stored + 150 new under a cap of 300"
assert_jq "$BODY" '.accepted == 150 and .duplicates == 200' "200 stored + 150 new: counts"
tk_wait_outbox_empty 30

tt_post "$TT_TMP/ab"
assert_eq "$STATUS" 200 "350 pure duplicates"
assert_jq "$BODY" '.accepted == 0 and .duplicates == 350' "350 pure duplicates: counts"

gen c 0 300 >"$TT_TMP/c"
tt_post "$TT_TMP/c"
assert_eq "$STATUS" 413 "301 new events under a cap of 300"
assert_contains "$BODY" "kafka.outbox_max_events (300)" "413 names the cap"
assert_eq "$(sqlite3 "$TT_DB" "SELECT count(*) FROM events WHERE id LIKE 'c%'")" 0 "nothing of the 413 stored"
hdrs=$(curl -s -o /dev/null -D - -H 'Content-Type: application/x-ndjson' --data-binary @"$TT_TMP/c" "$TT_URL/v1/events")
assert_not_contains "$hdrs" "Retry-After" "no Retry-After on 413"
gen c 0 299 >"$TT_TMP/c300"
tt_post "$TT_TMP/c300"
assert_eq "$STATUS" 200 "300 new events: exactly the cap"
tk_wait_outbox_empty 30
assert_eq "$(tt_metric tokentrail_kafka_delivered_total)" 650 "delivered"
tt_stop

# ---- Kafka unreachable: at the cap, retries of stored events still pass ----
dead=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tt_start --kafka-brokers "$dead" --config "$cap" || exit 1
gen d 0 299 >"$TT_TMP/d"
tt_post "$TT_TMP/d"
assert_eq "$STATUS" 200 "300 new with Kafka down"
assert_eq "$(tt_metric tokentrail_outbox_events)" 300 "outbox at the cap"
assert_eq "$(tt_metric tokentrail_outbox_full)" 1 "outbox full gauge"
tt_post "$TT_TMP/d"
assert_eq "$STATUS" 200 "a retry of stored events at the cap"
assert_jq "$BODY" '.accepted == 0 and .duplicates == 300' "retry at the cap: counts"
cat "$TT_TMP/d" <(gen e 0 0) >"$TT_TMP/de"
tt_post "$TT_TMP/de"
assert_eq "$STATUS" 503 "one new event beyond the cap"
assert_contains "$BODY" "outbox full" "503 message"
hdrs=$(curl -s -o /dev/null -D - -H 'Content-Type: application/x-ndjson' --data-binary @"$TT_TMP/de" "$TT_URL/v1/events")
assert_contains "$hdrs" "Retry-After: 1" "Retry-After on 503"
assert_eq "$(sqlite3 "$TT_DB" "SELECT count(*) FROM events WHERE id = 'e0'")" 0 "nothing of the 503 stored"
tt_post "$TT_TMP/c"
assert_eq "$STATUS" 413 "301 new at the cap: still 413 (no retry can succeed)"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
