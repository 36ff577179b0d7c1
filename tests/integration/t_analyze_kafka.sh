#!/usr/bin/env bash
# t_analyze_kafka.sh - `analyze --kafka-brokers` against a real broker fed by
# a collector: (1) one --once instance finds exactly what `analyze --db` finds
# on the collector's database, commits the group's offsets and finds nothing
# new on a second run; (3) the findings are in `tokentrail.findings`
# (key = token_id, header finding_kind). Two instances in one group are not
# compared yet: see (2) below and docs/analyze.md#kafka.
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

# ---- (2) two instances in one group: not tested here (issue 4 is open) ----
# A pair of followers matched one instance in most runs but not all: a
# follower applies historical events as they arrive (the analyzer clock,
# now - lateness, is already past them), so its timers can fire before
# earlier-dated events that arrive in a later poll, and a partition that moves
# in a rebalance does not take its token state along (docs/analyze.md#kafka).
# A flaky comparison would prove nothing; it returns with state hand-over.

# ---- (3) the findings topic ----
tk_dump tokentrail.findings "$TT_TMP/findings.tsv"
fp=$(tt_fingerprint raw-token-a)
uar=$(grep -P "\t$fp\t" "$TT_TMP/findings.tsv" | grep used_after_revoke | head -n 1)
assert_contains "$uar" "finding_kind=used_after_revoke" "finding_kind header"
assert_contains "$uar" "content-type=application/json" "content-type header"
topic_ids=$(cut -f5 "$TT_TMP/findings.tsv" | ids | uniq)
for want in "$out"; do
    missing=$(comm -23 <(printf '%s\n' "$want" | ids) <(printf '%s\n' "$topic_ids") | grep -c .)
    assert_eq "$missing" 0 "findings missing from tokentrail.findings"
done
assert_eq "$(cut -f3 "$TT_TMP/findings.tsv" | grep -vc '^sha256:')" 0 "keys are token ids"
tt_stop
tt_done
