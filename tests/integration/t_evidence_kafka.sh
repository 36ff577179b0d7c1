#!/usr/bin/env bash
# t_evidence_kafka.sh - `evidence export --kafka-brokers` against a real KRaft
# broker (tests/kafka): a collector produces a known stream; exports from the
# topic and from the collector's SQLite store, unfiltered and with each
# filter, verify and hold the same events (same set; same order where the
# event times differ); repeated exports are byte-identical, also with a tiny
# sort buffer (many runs merged); findings come from tokentrail.findings when
# that topic exists; a redelivered message is exported once; tampering with a
# Kafka bundle fails verify.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_ROOT/tests/kafka/testlib.sh"

tk_start
tk_topic tokentrail.events 3
tt_start --kafka-brokers "$TK_BS" || exit 1
W=$TT_TMP/evk
mkdir -p "$W"

# An incident; alice's token tied to it; bob's; an older token of alice
# issued before --from and used inside the range; pairs of events of
# different tokens at the same time (their order is where SQLite and Kafka
# may differ); arrival order not time order.
{
    printf '{"specversion":"1.0","id":"inc-open","source":"//pager","type":"incident.opened","time":"2026-11-22T07:00:00Z","data":{"incident_id":"INC-1","title":"db slow","severity":"sev2","services":["orders-db"],"opened_at":"2026-11-22T07:00:00Z"}}\n'
    printf '{"specversion":"1.0","id":"tok-old","source":"//as","type":"token.issued","time":"2026-11-22T06:30:00Z","data":{"token":"raw-old","client_id":"oncall-cli","subject":"alice","scopes":"db:read","issued_at":"2026-11-22T06:30:00Z","expires_at":"2026-11-22T08:30:00Z"}}\n'
    printf '{"specversion":"1.0","id":"inc-done","source":"//pager","type":"incident.resolved","time":"2026-11-22T07:09:30Z","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:09:30Z"}}\n'
    printf '{"specversion":"1.0","id":"tok-a","source":"//as","type":"token.issued","time":"2026-11-22T07:01:00Z","data":{"token":"raw-a","client_id":"oncall-cli","subject":"alice","scopes":"db:read","issued_at":"2026-11-22T07:01:00Z","expires_at":"2026-11-22T07:16:00Z","incident_id":"INC-1"}}\n'
    printf '{"specversion":"1.0","id":"tok-b","source":"//as","type":"token.issued","time":"2026-11-22T07:01:30Z","data":{"token":"raw-b","client_id":"batch","subject":"bob","scopes":"db:read","issued_at":"2026-11-22T07:01:30Z","expires_at":"2026-11-22T07:16:00Z"}}\n'
    for i in 1 2 3 4 5 6; do
        printf '{"specversion":"1.0","id":"use-a%d","source":"//rs","type":"token.used","time":"2026-11-22T07:0%d:10Z","data":{"token":"raw-a","resource":"orders-db","method":"GET","path":"/o/%d","status":200}}\n' "$i" "$((i + 1))" "$i"
        # even i: the same time as use-a$i
        printf '{"specversion":"1.0","id":"use-b%d","source":"//rs","type":"token.used","time":"2026-11-22T07:0%d:%s0Z","data":{"token":"raw-b","resource":"orders-db","method":"GET","path":"/b/%d","status":200}}\n' "$i" "$((i + 1))" "$((i % 2 ? 2 : 1))" "$i"
    done
    printf '{"specversion":"1.0","id":"use-old","source":"//rs","type":"token.used","time":"2026-11-22T07:03:00Z","data":{"token":"raw-old","resource":"orders-db","method":"GET","path":"/x","status":200}}\n'
    printf '{"specversion":"1.0","id":"rev-a","source":"//as","type":"token.revoked","time":"2026-11-22T07:09:00Z","data":{"token":"raw-a","reason":"done"}}\n'
    printf '{"specversion":"1.0","id":"late","source":"//rs","type":"token.used","time":"2026-11-22T09:00:00Z","data":{"token":"raw-b","resource":"orders-db"}}\n'
} >"$W/in.ndjson"
tt_post "$W/in.ndjson"
assert_eq "$STATUS" 200 "ingest status"
assert_jq "$BODY" '.accepted == 20' "ingest accepted"
tk_wait_outbox_empty 30

"$TT_CLI" evidence keygen -o "$W/signer" >/dev/null
FROM=2026-11-22T07:00:00Z TO=2026-11-22T08:00:00Z
xk() { # OUT [args]: export from Kafka
    local o=$1
    shift
    "$TT_CLI" evidence export --kafka-brokers "$TK_BS" --from $FROM --to $TO \
        --key "$W/signer.key" -o "$o" "$@"
}
xs() { # OUT [args]: export from SQLite
    local o=$1
    shift
    "$TT_CLI" evidence export --db "$TT_DB" --from $FROM --to $TO --key "$W/signer.key" -o "$o" "$@"
}
verify() { # BUNDLE -> VRC, VOUT
    VOUT=$("$TT_CLI" evidence verify "$1" --pubkey "$W/signer.pub" 2>&1)
    VRC=$?
}
ev() { tar -xzOf "$1" events.ndjson; }
# same_events NAME A B: same lines, and the same sequence of event times.
same_events() {
    assert_eq "$(ev "$2" | sort)" "$(ev "$3" | sort)" "$1: same events"
    assert_eq "$(ev "$2" | jq -r .time)" "$(ev "$3" | jq -r .time)" "$1: same time order"
}

out=$(xk "$W/k.tar.gz" 2>&1)
assert_eq "$?" 0 "kafka export exit ($out)"
assert_contains "$out" "exported 18 events" "kafka export summary"
xs "$W/s.tar.gz" >/dev/null 2>&1
assert_eq "$?" 0 "sqlite export exit"
for b in k s; do
    verify "$W/$b.tar.gz"
    assert_eq "$VRC" 0 "verify $b.tar.gz"
    assert_contains "$VOUT" "18 events, chain intact" "verify $b.tar.gz output"
done
same_events unfiltered "$W/k.tar.gz" "$W/s.tar.gz"
assert_ne "$(ev "$W/k.tar.gz" | jq -r .id | tr '\n' ' ')" "" "kafka events present"
man=$(tar -xzOf "$W/k.tar.gz" manifest.json)
assert_jq "$man" '.query.source == "kafka" and .counts.events == 18 and .counts.findings == 0' "kafka manifest query and counts"
assert_jq "$man" '[.notes[] | select(test("tokentrail.findings. does not exist"))] | length == 1' "findings note (no findings topic)"
assert_jq "$man" '[.notes[] | select(test("partition and offset"))] | length == 1' "ordering note"

# Reproducible, also when sorted in many tiny runs and merged.
xk "$W/k2.tar.gz" >/dev/null 2>&1
cmp -s "$W/k.tar.gz" "$W/k2.tar.gz" || fail "two Kafka exports of the same range differ"
pass
TT_EVIDENCE_KAFKA_SORT_MEM=1500 xk "$W/k3.tar.gz" >/dev/null 2>&1
assert_eq "$?" 0 "kafka export with tiny sort runs"
cmp -s "$W/k.tar.gz" "$W/k3.tar.gz" || fail "a Kafka export with 1.5 kB sort runs differs"
pass
assert_eq "$(find "$W" -maxdepth 1 -name '.tokentrail-evidence*' | wc -l)" 0 "no sort or spool files left"

# Filters: the same events as from SQLite.
for f in "--incident INC-1" "--subject alice" "--subject bob" "--client oncall-cli" \
    "--subject alice --client oncall-cli"; do
    n=$(echo "$f" | tr -c 'a-zA-Z0-9\n' _)
    # shellcheck disable=SC2086
    xk "$W/k$n.tar.gz" $f >/dev/null 2>&1
    assert_eq "$?" 0 "kafka export $f"
    # shellcheck disable=SC2086
    xs "$W/s$n.tar.gz" $f >/dev/null 2>&1
    verify "$W/k$n.tar.gz"
    assert_eq "$VRC" 0 "verify kafka $f"
    same_events "$f" "$W/k$n.tar.gz" "$W/s$n.tar.gz"
done
assert_eq "$(ev "$W/k__incident_INC_1.tar.gz" | jq -r .id | sort | tr '\n' ' ')" \
    "inc-done inc-open rev-a tok-a use-a1 use-a2 use-a3 use-a4 use-a5 use-a6 " "--incident events"
assert_contains "$(ev "$W/k__subject_alice.tar.gz" | jq -r .id | tr '\n' ' ')" "use-old" \
    "--subject alice includes a use of a token issued before --from"
assert_not_contains "$(ev "$W/k__subject_alice.tar.gz" | jq -r .id | tr '\n' ' ')" "use-b" \
    "--subject alice leaves bob's uses out"

# Findings from tokentrail.findings: one in range for alice, one out of range.
tk_topic tokentrail.findings 1
{
    printf '{"id":"f-1","kind":"outlived_incident","severity":"high","time":"2026-11-22T07:09:30Z","subject":"alice","client_id":"oncall-cli","incident_id":"INC-1","message":"m"}\n'
    printf '{"id":"f-2","kind":"idle_token","severity":"low","time":"2026-11-22T09:10:00Z","subject":"bob","client_id":"batch","message":"m"}\n'
    printf '{"id":"f-3","kind":"idle_token","severity":"low","time":"2026-11-22T07:20:00Z","subject":"bob","client_id":"batch","message":"m"}\n'
} | kcat -P -b "$TK_BS" -t tokentrail.findings 2>>"$TT_TMP/kcat.log" || fail "cannot produce findings"
xk "$W/kf.tar.gz" >/dev/null 2>&1
assert_eq "$?" 0 "kafka export with findings"
assert_eq "$(tar -xzOf "$W/kf.tar.gz" findings.ndjson | jq -r .id | tr '\n' ' ')" "f-1 f-3 " "findings from Kafka"
xk "$W/kfa.tar.gz" --subject alice >/dev/null 2>&1
assert_eq "$(tar -xzOf "$W/kfa.tar.gz" findings.ndjson | jq -r .id | tr '\n' ' ')" "f-1 " "findings --subject alice"
verify "$W/kfa.tar.gz"
assert_eq "$VRC" 0 "verify with findings"

# A redelivered message (a collector crash after delivery): exported once.
kcat -C -b "$TK_BS" -t tokentrail.events -e -o beginning -q -f '%k\t%s\n' 2>>"$TT_TMP/kcat.log" |
    grep '"id":"use-a3"' | head -n 1 >"$W/dup.tsv"
assert_eq "$(wc -l <"$W/dup.tsv")" 1 "found use-a3 in the topic"
kcat -P -b "$TK_BS" -t tokentrail.events -K "$(printf '\t')" <"$W/dup.tsv" 2>>"$TT_TMP/kcat.log"
TT_EVIDENCE_KAFKA_SORT_MEM=1500 xk "$W/kd.tar.gz" >/dev/null 2>&1
assert_eq "$?" 0 "kafka export with a redelivered message"
assert_eq "$(ev "$W/kd.tar.gz")" "$(ev "$W/k.tar.gz")" "a redelivered event is exported once"
assert_jq "$(tar -xzOf "$W/kd.tar.gz" manifest.json)" '[.notes[] | select(test("1 redelivered"))] | length == 1' "redelivery note"

# Tampering with a Kafka bundle fails verify.
mkdir -p "$W/t"
tar -xzf "$W/k.tar.gz" -C "$W/t"
(cd "$W/t" && sed -i '2s/"id":"/"id":"x/' events.ndjson &&
    tar -czf "$W/t.tar.gz" manifest.json manifest.sig README.txt events.ndjson findings.ndjson)
verify "$W/t.tar.gz"
assert_eq "$VRC" 1 "tampered: verify exit"
assert_contains "$VOUT" "events.ndjson: line 2 was modified" "tampered: message"

# Errors.
xk "$W/e.tar.gz" --topic no.such.topic >/dev/null 2>"$W/err"
assert_eq "$?" 1 "missing topic: exit"
assert_contains "$(cat "$W/err")" "no.such.topic" "missing topic: message"
[ -e "$W/e.tar.gz" ] && fail "missing topic left a bundle"
"$TT_CLI" evidence export --db "$TT_DB" --kafka-brokers "$TK_BS" --from $FROM --to $TO \
    --key "$W/signer.key" -o "$W/u.tar.gz" >/dev/null 2>&1
assert_eq "$?" 2 "--db with --kafka-brokers: usage error"
xs "$W/u.tar.gz" --topic x >/dev/null 2>&1
assert_eq "$?" 2 "--topic without --kafka-brokers: usage error"

tt_done
