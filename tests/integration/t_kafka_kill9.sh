#!/usr/bin/env bash
# t_kafka_kill9.sh - fault (b): the collector is killed with SIGKILL once
# mid-load (200,000 events in NDJSON batches) and restarted on the same
# database and port. Every acknowledged event reaches the topic; duplicates
# are bounded by the events in flight at the crash (produced, not yet marked
# delivered: at most TT_KAFKA_MAX_UNACKED = 20000) and are printed.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

EVENTS=${TT_KAFKA_FAULT_EVENTS:-200000}
MAX_UNACKED=20000
tk_start
tk_topic tt.crash 3
tt_start --kafka-brokers "$TK_BS" --kafka-topic tt.crash --log-level warn || exit 1
port=$TT_PORT

acked=$TT_TMP/acked
: >"$acked"
python3 "$TT_ROOT/tests/kafka/ndjson_load.py" --port "$port" --events "$EVENTS" --workers 4 \
    --batch 500 --prefix k9 --acked "$acked" --give-up 60 >"$TT_TMP/load.out" 2>&1 &
load_pid=$!
for _ in $(seq 200); do
    [ "$(grep -c . "$acked")" -ge $((EVENTS / 3)) ] && break
    sleep 0.05
done
delivered=$(tt_metric tokentrail_kafka_delivered_total)
tt_kill9
note "killed the collector with $(grep -c . "$acked") events acked, ~$delivered delivered"
# Same database, same port: the client's retries land on the new process.
tt_restart --kafka-brokers "$TK_BS" --kafka-topic tt.crash --log-level warn --listen "127.0.0.1:$port" || exit 1
note "restarted; outbox left by the crash: $(tt_metric tokentrail_outbox_events) events"
wait "$load_pid"
assert_eq "$?" 0 "load client exit status"
cat "$TT_TMP/load.out"
n_acked=$(grep -c . "$acked")
assert_eq "$n_acked" "$EVENTS" "events acknowledged"
tk_wait_outbox_empty 90

tk_dump tt.crash "$TT_TMP/dump.tsv"
r=$(python3 "$TT_ROOT/tests/kafka/verify_topic.py" "$TT_TMP/dump.tsv" "$acked")
note "verify: $r"
dups=$(jq .duplicates <<<"$r")
note "fault (b): sent $EVENTS, acked $n_acked, in topic $(jq .unique <<<"$r") unique / $(jq .messages <<<"$r") messages, duplicates $dups (bound $MAX_UNACKED)"
assert_jq "$r" '.missing == 0' "acked events missing from the topic"
assert_le "$dups" "$MAX_UNACKED" "duplicates after a crash"
assert_jq "$r" '.order_violations == 0' "per-key order (first occurrences)"
assert_jq "$r" '.key_mismatch == 0 and .header_bad == 0' "keys and headers"
assert_eq "$(sqlite3 "$TT_DB" 'SELECT count(*) FROM events')" "$EVENTS" "events stored once in SQLite"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
