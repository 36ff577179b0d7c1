#!/usr/bin/env bash
# t_kafka_broker_outage.sh - fault (a): while a client sends 200,000 events as
# fast as it can (NDJSON batches), the broker is stopped for 20 s and comes
# back. The collector keeps answering 2xx (events wait in the outbox), says
# "degraded" on /readyz, and once the broker is back every acknowledged event
# is in the topic exactly once (idempotent producer), each key's events in
# the order they were sent.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

EVENTS=${TT_KAFKA_FAULT_EVENTS:-200000}
DOWN_S=${TT_KAFKA_DOWN_S:-20}
tk_start
tk_topic tt.fault 3
tt_start --kafka-brokers "$TK_BS" --kafka-topic tt.fault --log-level warn || exit 1

acked=$TT_TMP/acked
: >"$acked"
python3 "$TT_ROOT/tests/kafka/ndjson_load.py" --port "$TT_PORT" --events "$EVENTS" --workers 4 \
    --batch 500 --prefix oa --acked "$acked" --give-up 90 >"$TT_TMP/load.out" 2>&1 &
load_pid=$!
# Let the load get going, then take the broker away mid-load.
for _ in $(seq 100); do
    [ "$(grep -c . "$acked")" -ge 20000 ] && break
    sleep 0.05
done
note "stopping the broker for ${DOWN_S}s with $(grep -c . "$acked") events acked"
"$TK_SH" restart "$TK_DIR" "$DOWN_S" >>"$TT_TMP/kafka.sh.log" 2>&1 &
restart_pid=$!
sleep $((DOWN_S / 2))
tt_get /readyz
note "readyz during the outage: $BODY"
assert_eq "$STATUS" 200 "/readyz during the outage"
assert_jq "$BODY" '.status == "degraded" and .outbox_events > 0' "/readyz degraded during the outage"
up=$(tt_metric tokentrail_kafka_up)
assert_eq "$up" 0 "tokentrail_kafka_up during the outage"
wait "$restart_pid" || die "broker did not come back: $(tail -n 5 "$TT_TMP/kafka.sh.log")"
note "broker back; outbox holds $(tt_metric tokentrail_outbox_events) events"
wait "$load_pid"
assert_eq "$?" 0 "load client exit status"
cat "$TT_TMP/load.out"
n_acked=$(grep -c . "$acked")
assert_eq "$n_acked" "$EVENTS" "events acknowledged (the collector kept accepting)"
tk_wait_outbox_empty 90

tk_dump tt.fault "$TT_TMP/dump.tsv"
r=$(python3 "$TT_ROOT/tests/kafka/verify_topic.py" "$TT_TMP/dump.tsv" "$acked")
note "verify: $r"
note "fault (a): sent $EVENTS, acked $n_acked, in topic $(jq .unique <<<"$r") unique / $(jq .messages <<<"$r") messages, duplicates $(jq .duplicates <<<"$r")"
assert_jq "$r" '.missing == 0' "acked events missing from the topic"
assert_jq "$r" '.duplicates == 0' "duplicates with a broker outage (idempotence)"
assert_jq "$r" '.order_violations == 0' "per-key order"
assert_jq "$r" '.key_mismatch == 0 and .header_bad == 0' "keys and headers"
assert_jq "$r" '.partitions_per_key_max == 1' "one partition per key"
errs=$(curl -s "$TT_URL/metrics" | grep '^tokentrail_kafka_delivery_errors_total' | tr '\n' ' ')
note "delivery errors: ${errs:-none}"
assert_eq "$(tt_metric tokentrail_kafka_delivered_total)" "$EVENTS" "delivered counter"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
