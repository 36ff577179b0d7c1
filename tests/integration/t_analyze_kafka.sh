#!/usr/bin/env bash
# t_analyze_kafka.sh - `analyze --kafka-brokers` against a real broker fed by
# a collector: (1) one --once instance finds exactly what `analyze --db` finds
# on the collector's database; (2) two followers in one consumer group find,
# together, the findings of a single instance, none twice, and commit the
# group's offsets - token-level kinds and the incident kinds (each member
# reads every partition's incident events); new_scope_for_client, which
# depends on a client's history across partitions, is left out (see
# docs/analyze.md#kafka); (3) the findings are in `tokentrail.findings`
# (key = token_id, header finding_kind).
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"
A=$TT_IDIR/analyze
POLICY=$A/policy.yaml
ASOF=2026-11-20T12:00:00Z
TOKEN_LEVEL='used_after_revoke|used_after_expiry|ttl_over_policy|refresh_not_allowed|idle_token|unused_scopes|scope_outside_baseline|unknown_scope|outlived_incident|write_outside_incident'

tk_start
tk_topic tokentrail.events 3
tk_topic tokentrail.findings 3

# The analyze stream plus refresh tokens e..l (each: ttl_over_policy,
# refresh_not_allowed, idle_token, unused_scopes), spread over the partitions.
ev=$TT_TMP/ev.ndjson
cp "$A/stream.ndjson" "$ev"
for t in e f g h i j k l; do
    grep '"id":"iss-c"' "$A/stream.ndjson" | sed -e "s/iss-c/iss-$t/" -e "s/raw-token-c/raw-token-$t/" -e "s/carol/user-$t/" >>"$ev"
done
tt_start --kafka-brokers "$TK_BS" || exit 1
tt_post "$ev"
assert_eq "$STATUS" 200 "POST of the stream"
assert_jq "$BODY" '.accepted == 21 and .duplicates == 1' "ingest response"
tk_wait_outbox_empty 30
tk_dump tokentrail.events "$TT_TMP/events.tsv"
assert_eq "$(grep -c . "$TT_TMP/events.tsv")" 21 "events in the topic"
assert_eq "$(cut -f1 "$TT_TMP/events.tsv" | sort -u | grep -c .)" 3 "events on all 3 partitions"

ids() { jq -r .id | sort; }
tok_ids() { jq -r "select(.kind | test(\"^($TOKEN_LEVEL)\$\")) | .id" | sort; }

# ---- (1) one instance, --once: the same findings as from the database ----
out=$("$TT_CLI" analyze --kafka-brokers "$TK_BS" --group g-once --state "$TT_TMP/once.db" \
    --policy "$POLICY" --once --as-of "$ASOF" --format json 2>"$TT_TMP/once.err")
assert_eq "$?" 3 "exit status of --once from Kafka"
db=$("$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --once --as-of "$ASOF" --format json 2>/dev/null)
assert_eq "$?" 3 "exit status of --once from the database"
assert_eq "$(printf '%s\n' "$out" | grep -c .)" 42 "findings from Kafka"
assert_eq "$(printf '%s\n' "$out" | ids | tr '\n' ' ')" "$(printf '%s\n' "$db" | ids | tr '\n' ' ')" "Kafka ids = database ids"
assert_ndjson_eq "$(printf '%s\n' "$out" | jq -cS . | sort)" "$(printf '%s\n' "$db" | jq -cS . | sort)" "Kafka findings = database findings"
assert_contains "$(cat "$TT_TMP/once.err")" "analysed 21 events" "analyze log"
assert_ndjson_eq "$("$TT_CLI" findings --db "$TT_TMP/once.db" --format json)" "$out" "findings table in --state"
# The group's offsets are committed: a second run reads nothing new.
out2=$("$TT_CLI" analyze --kafka-brokers "$TK_BS" --group g-once --state "$TT_TMP/once.db" \
    --policy "$POLICY" --once --as-of "$ASOF" --format json 2>"$TT_TMP/once2.err")
assert_eq "$?" 0 "exit status of a second --once"
assert_eq "$out2" "" "second --once prints nothing"
assert_contains "$(cat "$TT_TMP/once2.err")" "analysed 0 events" "second --once reads nothing"
lag=$("$TK_SH" tool "$TK_DIR" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$TK_BS" --describe --group g-once 2>/dev/null | awk '$2 == "tokentrail.events" { s += $6 } END { print s + 0 }')
assert_eq "$lag" 0 "committed lag of group g-once"
# A state file of the SQLite source is refused.
"$TT_CLI" analyze --kafka-brokers "$TK_BS" --state "$TT_DB" --policy "$POLICY" --once 2>"$TT_TMP/mix.err" >/dev/null
assert_eq "$?" 2 "exit status with a --state from the SQLite source"
assert_contains "$(cat "$TT_TMP/mix.err")" "not from a Kafka source" "mixed state message"

# ---- (2) two instances in one group = one instance (token-level) ----
# The pair joins before any event is on its topic (tt.pair, fed by a second
# collector), so no partition changes hands mid-stream (docs/analyze.md#kafka).
tk_topic tt.pair 3
start_follower() { # N
    rm -f "$TT_TMP/f$1.port"
    "$TT_CLI" analyze --kafka-brokers "$TK_BS" --topic tt.pair --group g-pair --state "$TT_TMP/f$1.db" \
        --policy "$POLICY" --format json --listen 127.0.0.1:0 --port-file "$TT_TMP/f$1.port" \
        --lateness 2s >"$TT_TMP/f$1.out" 2>"$TT_TMP/f$1.err" &
    eval "F$1=\$!"
    TT_PIDS+=("$!")
}
fmetric() { # N NAME
    curl -s --max-time 5 "http://127.0.0.1:$(cat "$TT_TMP/f$1.port")/metrics" | awk -v k="$2" '$1 == k { print $2; f=1 } END { if (!f) print "absent" }'
}
owned() { # N: partitions assigned now, from the log
    awk 'match($0, /\[[0-9]+\]/) { p = substr($0, RSTART, RLENGTH) }
         /kafka: assigned/ { a[p] = 1 }
         /kafka: revoked/ { delete a[p] }
         END { n = 0; for (k in a) n++; print n }' "$TT_TMP/f$1.err" 2>/dev/null
}
start_follower 1
start_follower 2
deadline=$((SECONDS + 30))
until [ "$(owned 1)" -gt 0 ] && [ "$(owned 2)" -gt 0 ] && [ $(($(owned 1) + $(owned 2))) = 3 ]; do
    [ "$SECONDS" -ge "$deadline" ] && { fail "group g-pair did not settle: $(owned 1)+$(owned 2) partitions"; break; }
    sleep 0.2
done
sleep 1
COLLECTOR1=$TT_PID
tt_start --kafka-brokers "$TK_BS" --kafka-topic tt.pair || exit 1
tt_post "$ev"
assert_eq "$STATUS" 200 "POST of the stream to the second collector"
tk_wait_outbox_empty 30
deadline=$((SECONDS + 40))
while :; do
    l1=$(fmetric 1 tokentrail_analyzer_source_lag_events 2>/dev/null)
    l2=$(fmetric 2 tokentrail_analyzer_source_lag_events 2>/dev/null)
    p1=$(fmetric 1 'tokentrail_analyzer_events_total{outcome="processed"}' 2>/dev/null)
    p2=$(fmetric 2 'tokentrail_analyzer_events_total{outcome="processed"}' 2>/dev/null)
    if [ "$l1" = 0 ] && [ "$l2" = 0 ] && [ $((${p1/absent/0} + ${p2/absent/0})) -ge 23 ] 2>/dev/null; then
        break
    fi
    [ "$SECONDS" -ge "$deadline" ] && { fail "followers did not catch up (lag $l1/$l2, processed $p1/$p2)"; break; }
    sleep 0.3
done
sleep 2 # one checkpoint interval after the last event: findings committed
note "partitions: follower 1 owns $(owned 1), follower 2 owns $(owned 2)"
tt_stop "$F1"
assert_eq "$TT_RC" 0 "follower 1 exit status"
tt_stop "$F2"
assert_eq "$TT_RC" 0 "follower 2 exit status"
# 19 token events once, and the 2 incident events in each member.
assert_eq "$((p1 + p2))" 23 "events processed by the pair"
assert_ne "$p1" 0 "follower 1 got events"
assert_ne "$p2" 0 "follower 2 got events"
s1=$("$TT_CLI" findings --db "$TT_TMP/f1.db" --format json)
s2=$("$TT_CLI" findings --db "$TT_TMP/f2.db" --format json)
pair_tok=$(printf '%s\n%s\n' "$s1" "$s2" | grep . | tok_ids)
single=$("$TT_CLI" analyze --kafka-brokers "$TK_BS" --topic tt.pair --group g-single \
    --state "$TT_TMP/single.db" --policy "$POLICY" --once --format json 2>/dev/null)
assert_eq "$?" 3 "exit status of the single instance"
single_tok=$(printf '%s\n' "$single" | tok_ids)
assert_eq "$(printf '%s\n' "$pair_tok" | uniq -d | grep -c .)" 0 "no token-level finding twice"
assert_eq "$(printf '%s\n' "$pair_tok" | tr '\n' ' ')" "$(printf '%s\n' "$single_tok" | tr '\n' ' ')" "pair token-level findings = single instance"
assert_ne "$(printf '%s\n' "$single_tok" | grep -c .)" 0 "some token-level findings"
assert_eq "$(printf '%s\n%s\n' "$s1" "$s2" | jq -r 'select(.kind | test("incident")) | .kind' | sort | tr '\n' ' ')" \
    "outlived_incident write_outside_incident " "incident kinds found by the pair"
assert_eq "$(grep -c . "$TT_TMP/f1.out" "$TT_TMP/f2.out" | awk -F: '{ s += $2 } END { print s }')" \
    "$(printf '%s\n%s\n' "$s1" "$s2" | grep -c .)" "followers printed what they stored"
lag=$("$TK_SH" tool "$TK_DIR" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$TK_BS" --describe --group g-pair 2>/dev/null | awk '$2 == "tt.pair" { s += $6 } END { print s + 0 }')
assert_eq "$lag" 0 "committed lag of group g-pair"

# ---- (3) the findings topic ----
tk_dump tokentrail.findings "$TT_TMP/findings.tsv"
fp=$(tt_fingerprint raw-token-a)
uar=$(grep -P "\t$fp\t" "$TT_TMP/findings.tsv" | grep used_after_revoke | head -n 1)
assert_contains "$uar" "finding_kind=used_after_revoke" "finding_kind header"
assert_contains "$uar" "content-type=application/json" "content-type header"
topic_ids=$(cut -f5 "$TT_TMP/findings.tsv" | ids | uniq)
for want in "$out" "$single" "$s1" "$s2"; do
    missing=$(comm -23 <(printf '%s\n' "$want" | ids) <(printf '%s\n' "$topic_ids") | grep -c .)
    assert_eq "$missing" 0 "findings missing from tokentrail.findings"
done
assert_eq "$(cut -f3 "$TT_TMP/findings.tsv" | grep -vc '^sha256:')" 0 "keys are token ids"
tt_stop
tt_stop "$COLLECTOR1"
tt_done
