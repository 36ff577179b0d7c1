#!/usr/bin/env bash
# t_kafka_dead_letter.sh - regression: an event the broker rejects for good
# (INVALID_TIMESTAMP: the topic refuses timestamps more than an hour ahead)
# blocked its partition forever ("producing the outbox again from seq 1" in a
# loop, nothing delivered). Now it becomes a dead letter: moved from the
# outbox to outbox_dead (the event stays in events), counted in
# tokentrail_kafka_dead_letter_total{code} and tokentrail_outbox_dead_events,
# logged once with its id, and every other event is delivered, in order per
# key, including the good events of the batch it failed in. The documented
# re-drive SQL (docs/kafka.md) produces it again after a restart.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

tk_start
"$TK_SH" topics "$TK_DIR" --create --topic tt.dl --partitions 3 --replication-factor 1 \
    --config message.timestamp.after.max.ms=3600000 >>"$TT_TMP/kafka.sh.log" 2>&1 ||
    die "cannot create topic tt.dl"
for _ in $(seq 100); do
    [ "$(kcat -b "$TK_BS" -L -t tt.dl -m 2 2>/dev/null | grep -c 'leader 1,')" -ge 3 ] && break
    sleep 0.1
done

tt_start --kafka-brokers "$TK_BS" --kafka-topic tt.dl || exit 1

inc() { # inc ID TYPE INCIDENT TIME
    if [ "$2" = incident.opened ]; then
        printf '{"specversion":"1.0","id":"%s","source":"//pager","type":"incident.opened","time":"%s","data":{"incident_id":"%s","title":"t","severity":"sev2","services":["db"],"opened_at":"%s"}}\n' "$1" "$4" "$3" "$4"
    else
        printf '{"specversion":"1.0","id":"%s","source":"//pager","type":"incident.resolved","time":"%s","data":{"incident_id":"%s","resolved_at":"%s"}}\n' "$1" "$4" "$3" "$4"
    fi
}

# Three events of one incident (one key, one partition, most likely one
# batch); the middle one is dated 2030.
{
    inc inc-9-open incident.opened INC-9 2026-11-22T07:00:00Z
    inc inc-9-future incident.resolved INC-9 2030-01-01T00:00:00Z
    inc inc-9-done incident.resolved INC-9 2026-11-22T07:09:00Z
} >"$TT_TMP/first"
tt_post "$TT_TMP/first"
assert_eq "$STATUS" 200 "POST with the bad event"
assert_jq "$BODY" '.accepted == 3' "all three accepted (the 2xx means durable)"

# Then more valid events, other keys too, once the bad one is isolated (the
# good events of a failed batch may otherwise land after later events of
# their key: docs/kafka.md, "Dead letters").
deadline=$((SECONDS + 60))
until [ "$(tt_metric 'tokentrail_kafka_dead_letter_total{code="INVALID_TIMESTAMP"}')" = 1 ] ||
    [ "$SECONDS" -ge "$deadline" ]; do
    sleep 0.2
done
{
    for i in $(seq 1 20); do
        tt_ev_issued "tok-$i" //as "raw-token-$((i % 4))" "2026-11-22T07:$(printf %02d "$i"):00Z"
    done
    inc inc-10-open incident.opened INC-10 2026-11-22T08:00:00Z
    inc inc-9-again incident.opened INC-9 2026-11-22T08:01:00Z
} >"$TT_TMP/more"
tt_post "$TT_TMP/more"
assert_eq "$STATUS" 200 "POST after"
tk_wait_outbox_empty 60

assert_eq "$(tt_metric 'tokentrail_kafka_dead_letter_total{code="INVALID_TIMESTAMP"}')" 1 "dead letter counter"
assert_eq "$(tt_metric tokentrail_outbox_dead_events)" 1 "dead letter gauge"
assert_eq "$(tt_metric tokentrail_kafka_delivered_total)" 24 "delivered: all but the dead letter"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT e.id, d.error FROM outbox_dead d JOIN events e ON e.seq = d.seq')" \
    "inc-9-future|INVALID_TIMESTAMP" "outbox_dead row"
assert_eq "$(sqlite3 "$TT_DB" "SELECT count(*) FROM events WHERE id = 'inc-9-future'")" 1 "the event stays in events"
assert_eq "$(grep -c 'inc-9-future.*rejected for good: INVALID_TIMESTAMP' "$TT_LOG")" 1 "logged once, with the event id"

dump=$TT_TMP/dump.tsv
tk_dump tt.dl "$dump"
assert_eq "$(grep -c . "$dump")" 24 "messages in the topic"
assert_eq "$(grep -c inc-9-future "$dump")" 0 "the dead letter is not in the topic"
assert_eq "$(awk -F'\t' '$3 == "INC-9" { print $5 }' "$dump" | jq -r .id | tr '\n' ' ')" \
    "inc-9-open inc-9-done inc-9-again " "the good events of its key, in order"
fp=$(tt_fingerprint raw-token-1)
assert_eq "$(awk -F'\t' -v k="$fp" '$3 == k { print $5 }' "$dump" | jq -r .id | tr '\n' ' ')" \
    "tok-1 tok-5 tok-9 tok-13 tok-17 " "another key, in order"

# Delivery goes on afterwards.
tt_ev_issued tok-late //as raw-token-late >"$TT_TMP/late"
tt_post "$TT_TMP/late"
assert_eq "$STATUS" 200 "POST later"
tk_wait_outbox_empty 30
assert_eq "$(tt_metric tokentrail_kafka_delivered_total)" 25 "delivered later"
tt_stop
assert_eq "$TT_RC" 0 "exit status"

# A restart reports the dead letters; they are not produced again.
tt_restart --kafka-brokers "$TK_BS" --kafka-topic tt.dl || exit 1
tk_wait_outbox_empty 30
assert_contains "$(cat "$TT_LOG")" "1 events in outbox_dead" "start-up warning"
assert_eq "$(tt_metric tokentrail_outbox_dead_events)" 1 "dead letter gauge after restart"
assert_eq "$(tt_metric tokentrail_kafka_produced_total)" 0 "dead letters are not produced again"
tt_stop

# Re-drive (docs/kafka.md), here into a topic that takes the event.
sqlite3 "$TT_DB" 'BEGIN; INSERT INTO outbox(seq) SELECT seq FROM outbox_dead; DELETE FROM outbox_dead; COMMIT;'
tk_topic tt.dl2 1
tt_restart --kafka-brokers "$TK_BS" --kafka-topic tt.dl2 || exit 1
tk_wait_outbox_empty 30
assert_eq "$(tt_metric tokentrail_outbox_dead_events)" 0 "no dead letters after the re-drive"
tk_dump tt.dl2 "$TT_TMP/dl2.tsv"
assert_eq "$(cut -f5 "$TT_TMP/dl2.tsv" | jq -r .id)" "inc-9-future" "re-driven event delivered"
tt_stop
tt_done
