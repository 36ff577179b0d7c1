#!/usr/bin/env bash
# t_analyze_kafka.sh - `analyze --kafka-brokers` against a real broker fed by
# a collector: (1) one --once instance finds exactly what `analyze --db` finds
# on the collector's database, commits the group's offsets and finds nothing
# new on a second run; (3) the findings are in `tokentrail.findings`
# (key = token_id, header finding_kind); (2) two followers in one consumer
# group, one arriving mid-stream and taking partitions over, report the same
# token-level findings as one instance, none of them twice; (4) a fresh
# follower on a backlog whose partitions hold different times finds what
# --once finds (no event counted late).
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

# ---- (2) two instances in one group = one instance ----
# Three followers on the same topic: X alone in group gx; A and then B in
# group gp. A reads the history first; B's arrival moves some partitions to
# B, which must rebuild their token state from the group's committed offsets
# (B has no state of its own) before the second phase arrives: uses of
# revoked tokens (used_after_revoke needs the token's state) and revocations
# (unused_scopes). X's token-level findings must equal A's and B's together,
# with none reported by both.
tk_topic ho.events 3
tt_start --kafka-brokers "$TK_BS" --kafka-topic ho.events || exit 1
HO_URL=$TT_URL
an_start() { # NAME GROUP: a follower on ho.events, metrics port in $TT_TMP/NAME.port
    "$TT_CLI" analyze --kafka-brokers "$TK_BS" --topic ho.events --group "$2" \
        --state "$TT_TMP/$1.db" --findings-topic ho.findings --policy "$A/handover-policy.yaml" --lateness 4s \
        --listen 127.0.0.1:0 --port-file "$TT_TMP/$1.port" --format json \
        >"$TT_TMP/$1.out" 2>"$TT_TMP/$1.err" &
    TT_PIDS+=("$!")
    echo $! >"$TT_TMP/$1.pid"
}
an_metric() { # NAME SAMPLE
    curl -s --max-time 5 "http://127.0.0.1:$(cat "$TT_TMP/$1.port" 2>/dev/null)/metrics" |
        awk -v k="$2" '$1 == k { print $2; f=1 } END { if (!f) print "absent" }'
}
an_wait() { # NAME SAMPLE VALUE TIMEOUT_S DESCRIPTION: until the sample equals VALUE
    local deadline=$((SECONDS + $4)) v
    while :; do
        v=$(an_metric "$1" "$2")
        [ "$v" = "$3" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$5: $1 $2 is $v, not $3, after $4 s"
            return 1
        fi
        sleep 0.2
    done
}
an_wait_log() { # NAME TEXT TIMEOUT_S
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$TT_TMP/$1.err"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "$1 logged no '$2' within $3 s; log:"
            sed 's/^/    /' "$TT_TMP/$1.err" | tail -n 20 >&2
            return 1
        fi
        sleep 0.2
    done
}
an_start X gx
an_start A gp
an_wait X tokentrail_analyzer_source_lag_events 0 60 "X assigned"
an_wait A tokentrail_analyzer_source_lag_events 0 60 "A assigned"
# The history is posted as it happens (times within 2.5 s of now), so each
# follower reads it within the 4 s lateness and applies it in event-time order.
python3 "$A/handover_gen.py" 1 "$(date +%s%3N)" >"$TT_TMP/ho1.ndjson"
tt_post "$TT_TMP/ho1.ndjson"
assert_eq "$STATUS" 200 "POST of the hand-over history"
tk_wait_outbox_empty 30
H1=$(grep -c . "$TT_TMP/ho1.ndjson")
an_wait X 'tokentrail_analyzer_events_total{outcome="processed"}' "$H1" 60 "X read the history"
an_wait A 'tokentrail_analyzer_events_total{outcome="processed"}' "$H1" 60 "A read the history"
sleep 1.5 # a checkpoint, and the offsets committed with it
an_start B gp
an_wait_log B "taken over" 60
an_wait_log A "now another member's" 60
an_wait B tokentrail_analyzer_source_lag_events 0 60 "B caught up after the hand-over"
python3 "$A/handover_gen.py" 2 0 "$(date +%s%3N)" >"$TT_TMP/ho2.ndjson"
TT_URL=$HO_URL tt_post "$TT_TMP/ho2.ndjson"
assert_eq "$STATUS" 200 "POST of the second phase"
tk_wait_outbox_empty 30
H2=$(( H1 + $(grep -c . "$TT_TMP/ho2.ndjson") ))
an_wait X 'tokentrail_analyzer_events_total{outcome="processed"}' "$H2" 60 "X read the second phase"
for n in A B; do
    an_wait "$n" tokentrail_analyzer_source_lag_events 0 60 "$n read the second phase"
    an_wait "$n" tokentrail_analyzer_buffered_events 0 30 "$n applied the second phase"
done
an_wait X tokentrail_analyzer_buffered_events 0 30 "X applied the second phase"
assert_eq "$(an_metric B 'tokentrail_analyzer_events_total{outcome="unknown_token"}')" 0 "B knew every token it was handed"
sleep 1.5
for n in X A B; do
    kill -TERM "$(cat "$TT_TMP/$n.pid")"
    tt_wait_exit "$(cat "$TT_TMP/$n.pid")" 30 || fail "analyzer $n did not stop"
    assert_eq "$TT_WAIT_RC" 0 "exit status of follower $n"
done
fx=$(tok_ids <"$TT_TMP/X.out")
fa=$(tok_ids <"$TT_TMP/A.out")
fb=$(tok_ids <"$TT_TMP/B.out")
note "token-level findings: X $(printf '%s' "$fx" | grep -c .), A $(printf '%s' "$fa" | grep -c .), B $(printf '%s' "$fb" | grep -c .)"
fab=$(printf '%s\n%s\n' "$fa" "$fb" | grep . | sort -u)
assert_eq "$(comm -23 <(printf '%s\n' "$fx") <(printf '%s\n' "$fab") | tr '\n' ' ')" "" "findings of one instance that the two members missed"
assert_eq "$(comm -13 <(printf '%s\n' "$fx") <(printf '%s\n' "$fab") | tr '\n' ' ')" "" "findings of the two members that one instance did not report"
assert_eq "$(comm -12 <(printf '%s\n' "$fa") <(printf '%s\n' "$fb") | grep -c .)" 0 "findings reported by both members"
assert_eq "$(printf '%s\n' "$fx" | grep -c .)" "$(jq -r "select(.kind | test(\"^($TOKEN_LEVEL)\$\")) | .kind" <"$TT_TMP/X.out" | grep -c .)" "X's ids are unique"
b_uar=$(jq -r 'select(.kind == "used_after_revoke") | .token_id' <"$TT_TMP/B.out" | grep -c .)
assert_ne "$b_uar" 0 "used_after_revoke found by B on tokens it took over"
assert_eq "$(jq -r 'select(.kind == "used_after_revoke") | .id' <"$TT_TMP/X.out" | grep -c .)" 12 "used_after_revoke findings (one per revoked token)"
assert_ne "$(printf '%s\n' "$fa" | grep -c .)" 0 "A reported findings"

# ---- (4) a follower reading a backlog whose partitions hold different times ----
# Six incidents hours apart, each with tokens that outlive it; keys spread the
# tokens over 3 partitions, so a partition can hold 07:00 events while another
# still has 02:00 ones unread. A fresh follower must find what --once finds.
# Pins a bug: the follow clock was the newest event time read anywhere minus
# lateness, so it ran past incident events the incident reader had not yet
# delivered; they counted as late and 4 of 9 fresh followers missed most
# outlived_incident findings.
tk_topic bl.events 3
tt_start --kafka-brokers "$TK_BS" --kafka-topic bl.events || exit 1
python3 - >"$TT_TMP/backlog.ndjson" <<'PY'
import json
for k, hour in enumerate([2, 7, 3, 6, 4, 5]):
    inc = "INC-BL%d" % k
    t = lambda m: "2026-11-20T%02d:%02d:00Z" % (hour + m // 60, m % 60)
    ev = lambda i, ty, m, d: print(json.dumps({"specversion": "1.0", "id": "%s-%s" % (inc, i),
        "source": "//bl", "type": ty, "time": t(m), "data": d}))
    ev("open", "incident.opened", 0, {"incident_id": inc, "severity": "sev2", "services": ["orders-db"],
                                      "opened_at": t(0)})
    for i in range(12):
        ev("iss%d" % i, "token.issued", 1, {"token": "bl-%d-%d" % (k, i), "client_id": "oncall-cli",
           "scopes": "db:orders:read", "issued_at": t(1), "expires_at": t(50), "incident_id": inc})
    ev("done", "incident.resolved", 8, {"incident_id": inc, "resolved_at": t(8)})
PY
tt_post "$TT_TMP/backlog.ndjson"
assert_eq "$STATUS" 200 "POST of the backlog"
assert_jq "$BODY" '.accepted == 84' "backlog accepted"
tk_wait_outbox_empty 30
bl_once=$("$TT_CLI" analyze --kafka-brokers "$TK_BS" --topic bl.events --group g-bl-once \
    --state "$TT_TMP/bl-once.db" --findings-topic bl.findings --policy "$POLICY" --once \
    --format json 2>/dev/null)
assert_eq "$(printf '%s\n' "$bl_once" | jq -r 'select(.kind == "outlived_incident") | .id' | grep -c .)" 72 \
    "outlived_incident from --once (12 tokens x 6 incidents)"
for run in 1 2 3; do
    "$TT_CLI" analyze --kafka-brokers "$TK_BS" --topic bl.events --group "g-bl-$run" \
        --state "$TT_TMP/bl-$run.db" --findings-topic bl.findings --policy "$POLICY" \
        --listen 127.0.0.1:0 --port-file "$TT_TMP/bl$run.port" --format json \
        >"$TT_TMP/bl$run.out" 2>"$TT_TMP/bl$run.err" &
    TT_PIDS+=("$!")
    echo $! >"$TT_TMP/bl$run.pid"
    an_wait "bl$run" 'tokentrail_analyzer_events_total{outcome="processed"}' 84 60 "follower $run read the backlog"
    assert_eq "$(an_metric "bl$run" 'tokentrail_analyzer_events_total{outcome="late"}')" 0 "follower $run: late events"
    kill -TERM "$(cat "$TT_TMP/bl$run.pid")"
    tt_wait_exit "$(cat "$TT_TMP/bl$run.pid")" 20 || fail "follower $run did not stop"
    differ=$(comm -3 <(ids <"$TT_TMP/bl$run.out") <(printf '%s\n' "$bl_once" | ids) | grep -c .)
    assert_eq "$differ" 0 "follower $run: findings not also found by --once, or missed"
    assert_eq "$(grep -c . <"$TT_TMP/bl$run.out")" "$(printf '%s\n' "$bl_once" | grep -c .)" \
        "follower $run: as many findings as --once"
done

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
