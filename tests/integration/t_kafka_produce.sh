#!/usr/bin/env bash
# t_kafka_produce.sh - the collector produces every accepted event to a real
# Kafka broker: content (the stored CloudEvent), key (token_id / incident_id),
# headers (content-type + ce_*), per-key order, metrics and /readyz;
# `tokentrail events --kafka-brokers` reads back what `--db` prints; a bad
# librdkafka property, a kafka.partitioner other than murmur2_random, a
# kafka.* alias of our own keys, an illegal topic and an empty broker list
# are start-up errors naming the key; with the broker
# unreachable the outbox fills to its cap (503 + Retry-After), and a restart
# against the broker delivers the backlog. Embedded mode keeps no outbox.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

tk_start
tk_topic tokentrail.events 3

# ---- produce, default topic, config file with a pass-through key ----
tt_newdir
cat >"$TT_DIR/c.yaml" <<YAML
listen: 127.0.0.1:0
db: $TT_DIR/tt.db
port_file: $TT_DIR/port
kafka:
  brokers: $TK_BS
  compression: zstd
  client.id: tt-integration
  statistics.interval.ms: 0
YAML
tt_start_raw --config "$TT_DIR/c.yaml" || exit 1
# The relay connects in the background ("connecting" first): wait for the
# state to settle instead of sampling it once, up to 30 s on a loaded machine.
for _ in $(seq 1 300); do
    tt_get /readyz
    [ "$(jq -r .kafka <<<"$BODY" 2>/dev/null)" = "up" ] && break
    sleep 0.1
done
assert_eq "$STATUS" 200 "/readyz"
assert_jq "$BODY" '.status == "ready" and .kafka == "up" and .outbox_events == 0' "/readyz with Kafka"

ev=$TT_TMP/ev.ndjson
{
    echo '{"specversion":"1.0","id":"inc-1-open","source":"//pager","type":"incident.opened","time":"2026-11-22T07:00:00Z","data":{"incident_id":"INC-1","title":"orders DB slow","severity":"sev2","services":["orders-db"],"opened_at":"2026-11-22T07:00:00Z"}}'
    echo '{"specversion":"1.0","id":"tok-1","source":"//as","type":"token.issued","time":"2026-11-22T07:01:00Z","data":{"token":"the-raw-access-token","client_id":"oncall-cli","subject":"alice","scopes":"db:orders:read","issued_at":"2026-11-22T07:01:00Z","expires_at":"2026-11-22T07:16:00Z","incident_id":"INC-1"}}'
    for i in $(seq 1 50); do
        printf '{"specversion":"1.0","id":"use-%02d","source":"//rs/orders","type":"token.used","time":"2026-11-22T07:%02d:00Z","data":{"token":"the-raw-access-token","resource":"orders-db","method":"GET","path":"/orders/%d","status":200}}\n' "$i" $((i % 60)) "$i"
    done
    echo '{"specversion":"1.0","id":"rev-1","source":"//as","type":"token.revoked","time":"2026-11-22T07:10:00Z","data":{"token":"the-raw-access-token","reason":"done","actor":"alice"}}'
    echo '{"specversion":"1.0","id":"inc-1-done","source":"//pager","type":"incident.resolved","time":"2026-11-22T07:09:00Z","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:09:00Z"}}'
} >"$ev"
tt_post "$ev"
assert_eq "$STATUS" 200 "POST"
assert_jq "$BODY" '.accepted == 54' "accepted"
tk_wait_outbox_empty 30

dump=$TT_TMP/dump.tsv
tk_dump tokentrail.events "$dump"
assert_eq "$(grep -c . "$dump")" 54 "messages in the topic"
fp=$(tt_fingerprint the-raw-access-token)
assert_eq "$(awk -F'\t' '$3 == "INC-1"' "$dump" | grep -c .)" 2 "incident events keyed by incident_id"
assert_eq "$(awk -F'\t' -v k="$fp" '$3 == k' "$dump" | grep -c .)" 52 "token events keyed by token_id"
assert_eq "$(awk -F'\t' -v k="$fp" '$3 == k { print $1 }' "$dump" | sort -u | grep -c .)" 1 "one token's events on one partition"
assert_not_contains "$(cat "$dump")" "the-raw-access-token" "raw token in Kafka"
# Per-key order: the token's events in the order they were sent.
assert_eq "$(awk -F'\t' -v k="$fp" '$3 == k { print $5 }' "$dump" | jq -r .id | tr '\n' ' ')" \
    "tok-1 $(seq -f 'use-%02g' 1 50 | tr '\n' ' ')rev-1 " "per-key order"
line=$(grep -P '\tINC-1\t' "$dump" | grep inc-1-open)
assert_contains "$line" "content-type=application/cloudevents+json" "content-type header"
assert_contains "$line" "ce_type=incident.opened" "ce_type header"
assert_contains "$line" "ce_id=inc-1-open" "ce_id header"
assert_contains "$line" "ce_source=//pager" "ce_source header"
assert_contains "$line" "ce_specversion=1.0" "ce_specversion header"
# The value is the stored normalised CloudEvent, byte for byte.
assert_eq "$(cut -f5 "$dump" | sort)" "$(tt_events | sort)" "message values = stored events"

# Read back from Kafka: same output as from SQLite, filters included.
assert_eq "$("$TT_CLI" events --kafka-brokers "$TK_BS" --format json)" "$(tt_events)" "events --kafka-brokers = events --db"
assert_eq "$("$TT_CLI" events --kafka-brokers "$TK_BS" --topic tokentrail.events --since 2026-11-22T07:09:00Z --until 2026-11-22T07:11:00Z --format json)" \
    "$(tt_events --since 2026-11-22T07:09:00Z --until 2026-11-22T07:11:00Z)" "events --since/--until from Kafka"
assert_eq "$("$TT_CLI" events --kafka-brokers "$TK_BS" --incident INC-1 --type incident.resolved --format json | jq -r .id)" "inc-1-done" "events --incident --type from Kafka"
assert_eq "$("$TT_CLI" events --kafka-brokers "$TK_BS" --token "$fp" --limit 3 --format json)" "$(tt_events --token "$fp" --limit 3)" "events --token --limit from Kafka"
"$TT_CLI" events --kafka-brokers "$TK_BS" --topic no.such.topic >/dev/null 2>"$TT_TMP/err"
assert_eq "$?" 2 "events on a missing topic: exit status"
assert_contains "$(cat "$TT_TMP/err")" "no.such.topic" "events on a missing topic: message"

assert_eq "$(tt_metric tokentrail_kafka_delivered_total)" 54 "delivered metric"
assert_eq "$(tt_metric tokentrail_kafka_produced_total)" 54 "produced metric"
assert_eq "$(tt_metric tokentrail_kafka_delivery_duration_seconds_count)" 54 "delivery latency histogram count"
assert_eq "$(tt_metric tokentrail_outbox_events)" 0 "outbox metric"
assert_eq "$(tt_metric tokentrail_outbox_oldest_age_seconds)" 0.000 "oldest age metric"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM outbox')" 0 "outbox rows after delivery"
tt_stop
assert_eq "$TT_RC" 0 "exit status after SIGTERM"
assert_contains "$(cat "$TT_LOG")" "outbox empty" "shutdown log"

# ---- a bad librdkafka property names the key ----
tt_newdir
printf 'kafka:\n  brokers: %s\n  no.such.property: 1\n' "$TK_BS" >"$TT_DIR/bad.yaml"
"$TT_BIN" collect --config "$TT_DIR/bad.yaml" --db "$TT_DIR/x.db" --listen 127.0.0.1:0 >"$TT_TMP/bad.out" 2>&1
assert_eq "$?" 2 "bad kafka property: exit status"
assert_contains "$(cat "$TT_TMP/bad.out")" "kafka.no.such.property" "bad kafka property: message"
"$TT_BIN" collect --kafka-brokers "$TK_BS" --db "$TT_DIR/x.db" --listen 127.0.0.1:0 --config <(printf 'kafka:\n  acks: 1\n') >"$TT_TMP/bad.out" 2>&1
assert_eq "$?" 2 "kafka.acks=1: exit status"
assert_contains "$(cat "$TT_TMP/bad.out")" "kafka.acks: must be all" "kafka.acks=1: message"
# Regressions: settings that started and then broke the guarantee (per-key
# order, our own keys silently overridden, a topic no delivery can reach, no
# Kafka at all) are start-up errors naming the key(s). `timeout` so that a
# collector that starts anyway fails the test instead of hanging it.
while IFS='|' read -r setting want; do
    printf 'kafka:\n  brokers: %s\n  %s\n' "$TK_BS" "$setting" >"$TT_DIR/bad.yaml"
    timeout 20 "$TT_BIN" collect --config "$TT_DIR/bad.yaml" --db "$TT_DIR/x.db" --listen 127.0.0.1:0 >"$TT_TMP/bad.out" 2>&1
    assert_eq "$?" 2 "$setting: exit status"
    assert_contains "$(cat "$TT_TMP/bad.out")" "$want" "$setting: message"
done <<'CASES'
partitioner: random|kafka.partitioner: must be murmur2_random
bootstrap.servers: 127.0.0.1:1|kafka.bootstrap.servers: an alias of kafka.brokers
metadata.broker.list: 127.0.0.1:1|kafka.metadata.broker.list: an alias of kafka.brokers
compression.type: gzip|kafka.compression.type: an alias of kafka.compression
compression.codec: gzip|kafka.compression.codec: an alias of kafka.compression
topic: "bad topic name!"|kafka.topic: 'bad topic name!' is not a legal Kafka topic name
topic: ".."|kafka.topic: '..' is not a legal Kafka topic name
CASES
printf 'kafka:\n  brokers: ""\n' >"$TT_DIR/bad.yaml"
timeout 20 "$TT_BIN" collect --config "$TT_DIR/bad.yaml" --db "$TT_DIR/x.db" --listen 127.0.0.1:0 >"$TT_TMP/bad.out" 2>&1
assert_eq "$?" 2 "kafka.brokers \"\": exit status"
assert_contains "$(cat "$TT_TMP/bad.out")" "kafka.brokers: is empty" "kafka.brokers \"\": message"
timeout 20 "$TT_BIN" collect --kafka-brokers "" --db "$TT_DIR/x.db" --listen 127.0.0.1:0 >"$TT_TMP/bad.out" 2>&1
assert_eq "$?" 2 "--kafka-brokers \"\": exit status"
assert_contains "$(cat "$TT_TMP/bad.out")" "kafka.brokers: is empty" "--kafka-brokers \"\": message"

# ---- embedded mode: no outbox rows ----
tt_start || exit 1
tt_post "$ev"
assert_eq "$STATUS" 200 "embedded POST"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM outbox')" 0 "outbox rows in embedded mode"
tt_get /readyz
assert_json_eq "$BODY" '{"status":"ready","store":"ok"}' "embedded /readyz unchanged"
assert_eq "$(tt_metric tokentrail_outbox_events)" absent "no Kafka metrics in embedded mode"
tt_stop

# ---- Kafka unreachable: degraded, then full (503 + Retry-After) ----
dead=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tt_start --kafka-brokers "$dead" --kafka-topic tt.capped --config <(printf 'kafka:\n  outbox_max_events: 50\n  flush_timeout: 500ms\n') || exit 1
head -n 40 "$ev" >"$TT_TMP/first40"
tail -n +41 "$ev" >"$TT_TMP/rest"
tt_post "$TT_TMP/first40"
assert_eq "$STATUS" 200 "POST with Kafka down"
tt_get /readyz
assert_eq "$STATUS" 200 "/readyz degraded status code"
assert_jq "$BODY" '.status == "degraded" and .kafka != "up" and .outbox_events == 40' "/readyz degraded"
tt_post "$TT_TMP/rest"
assert_eq "$STATUS" 503 "POST beyond the outbox cap"
assert_contains "$BODY" "outbox full" "503 message"
hdrs=$(curl -s -o /dev/null -D - -H 'Content-Type: application/x-ndjson' --data-binary @"$TT_TMP/rest" "$TT_URL/v1/events")
assert_contains "$hdrs" "Retry-After: 1" "Retry-After on 503"
tt_post_str "$(sed -n 41,50p "$ev")"
assert_eq "$STATUS" 200 "POST up to the cap"
tt_get /readyz
assert_eq "$STATUS" 503 "/readyz when full"
assert_jq "$BODY" '.status == "unavailable" and .outbox_full == true and .outbox_events == 50' "/readyz full"
assert_eq "$(tt_metric tokentrail_outbox_events)" 50 "outbox metric while down"
assert_eq "$(tt_metric tokentrail_outbox_full)" 1 "outbox full metric"
tt_post_str "$(sed -n 51p "$ev")"
assert_eq "$STATUS" 503 "POST one more at the cap"
sleep 1.1
age=$(tt_metric tokentrail_outbox_oldest_age_seconds)
assert_eq "$(awk -v a="$age" 'BEGIN { print (a >= 1.0) }')" 1 "oldest age grows ($age)"
tt_stop
assert_eq "$TT_RC" 0 "exit status with undelivered events (they are safe in the outbox)"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM outbox')" 50 "outbox rows kept over the restart"

# Restart against the real broker: the backlog is delivered, in order.
tk_topic tt.capped 3
tt_restart --kafka-brokers "$TK_BS" --kafka-topic tt.capped || exit 1
tk_wait_outbox_empty 30
tk_dump tt.capped "$TT_TMP/capped.tsv"
assert_eq "$(grep -c . "$TT_TMP/capped.tsv")" 50 "backlog delivered after restart"
assert_eq "$(awk -F'\t' -v k="$fp" '$3 == k { print $5 }' "$TT_TMP/capped.tsv" | jq -r .id | head -n 3 | tr '\n' ' ')" "tok-1 use-01 use-02 " "backlog order per key"
tt_stop
tt_done
