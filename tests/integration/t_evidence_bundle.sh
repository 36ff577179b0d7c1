#!/usr/bin/env bash
# t_evidence_bundle.sh - evidence bundles end to end: events in through the
# real collector, export, verify OK; then every kind of tampering (unpack,
# edit, repack with tar; byte flips and truncation of the .tar.gz) and a
# wrong key must fail with exit 1 and the right message; exports repeat
# byte for byte.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
W=$TT_TMP/ev
mkdir -p "$W"

# An incident, two tokens (alice's tied to it), uses and a revocation.
{
    printf '{"specversion":"1.0","id":"inc-open","source":"//pager","type":"incident.opened","time":"2026-11-22T07:00:00Z","data":{"incident_id":"INC-1","title":"db slow","severity":"sev2","services":["orders-db"],"opened_at":"2026-11-22T07:00:00Z"}}\n'
    printf '{"specversion":"1.0","id":"tok-a","source":"//as","type":"token.issued","time":"2026-11-22T07:01:00Z","data":{"token":"raw-a","client_id":"oncall-cli","subject":"alice","scopes":"db:read","issued_at":"2026-11-22T07:01:00Z","expires_at":"2026-11-22T07:16:00Z","incident_id":"INC-1"}}\n'
    printf '{"specversion":"1.0","id":"tok-b","source":"//as","type":"token.issued","time":"2026-11-22T07:01:30Z","data":{"token":"raw-b","client_id":"batch","subject":"bob","scopes":"db:read","issued_at":"2026-11-22T07:01:30Z","expires_at":"2026-11-22T07:16:00Z"}}\n'
    for i in 1 2 3 4 5 6; do
        printf '{"specversion":"1.0","id":"use-a%d","source":"//rs","type":"token.used","time":"2026-11-22T07:0%d:10Z","data":{"token":"raw-a","resource":"orders-db","method":"GET","path":"/o/%d","status":200}}\n' "$i" "$((i + 1))" "$i"
        printf '{"specversion":"1.0","id":"use-b%d","source":"//rs","type":"token.used","time":"2026-11-22T07:0%d:20Z","data":{"token":"raw-b","resource":"orders-db","method":"GET","path":"/b/%d","status":200}}\n' "$i" "$((i + 1))" "$i"
    done
    printf '{"specversion":"1.0","id":"rev-a","source":"//as","type":"token.revoked","time":"2026-11-22T07:09:00Z","data":{"token":"raw-a","reason":"done"}}\n'
    printf '{"specversion":"1.0","id":"inc-done","source":"//pager","type":"incident.resolved","time":"2026-11-22T07:09:30Z","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:09:30Z"}}\n'
    printf '{"specversion":"1.0","id":"late","source":"//rs","type":"token.used","time":"2026-11-22T09:00:00Z","data":{"token":"raw-b","resource":"orders-db"}}\n'
} >"$W/in.ndjson"
tt_post "$W/in.ndjson"
assert_eq "$STATUS" 200 "ingest status"
assert_jq "$BODY" '.accepted == 18' "ingest accepted"

# Findings, in the analyzer's table (lib/tt_anstore.c): one in range, one not.
sqlite3 "$TT_DB" <<'SQL' || fail "cannot add findings"
CREATE TABLE IF NOT EXISTS findings (id TEXT PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL,
  time_ms INTEGER NOT NULL, token_id TEXT, client_id TEXT, subject TEXT, incident_id TEXT,
  message TEXT NOT NULL, detected_ms INTEGER NOT NULL, body TEXT NOT NULL);
INSERT INTO findings VALUES ('f-1', 'outlived_incident', 'high', 1795331370000, NULL, 'oncall-cli',
  'alice', 'INC-1', 'token outlived its incident', 0, '{"id":"f-1","kind":"outlived_incident"}');
INSERT INTO findings VALUES ('f-2', 'idle_token', 'low', 1795338000000, NULL, 'batch', 'bob', NULL,
  'idle', 0, '{"id":"f-2","kind":"idle_token"}');
SQL
mkdir -p "$W/drills/run-1" "$W/drills/run-2"
echo '{"run_id":"run-1","started_at":"2026-11-22T07:05:00Z","verdict":"pass"}' >"$W/drills/run-1/report.json"
echo '{"run_id":"run-2","started_at":"2026-11-23T07:05:00Z","verdict":"pass"}' >"$W/drills/run-2/report.json"
printf 'scopes:\n  db:read: {service: orders-db, access: read}\n' >"$W/policy.yaml"

"$TT_CLI" evidence keygen -o "$W/signer" >/dev/null
"$TT_CLI" evidence keygen -o "$W/other" >/dev/null
out=$("$TT_CLI" evidence keygen -o "$W/signer" 2>&1)
assert_eq "$?" 1 "keygen refuses to overwrite"
assert_contains "$out" "refusing to overwrite" "keygen message"
assert_eq "$(stat -c %a "$W/signer.key")" 600 "private key mode"

FROM=2026-11-22T07:00:00Z TO=2026-11-22T08:00:00Z
export_b() { # OUT [args]
    local o=$1
    shift
    "$TT_CLI" evidence export --db "$TT_DB" --from $FROM --to $TO --key "$W/signer.key" \
        -o "$o" --policy "$W/policy.yaml" --drill-reports "$W/drills" "$@"
}
out=$(export_b "$W/b1.tar.gz" 2>&1)
assert_eq "$?" 0 "export exit"
assert_contains "$out" "exported 17 events" "export summary"
export_b "$W/b2.tar.gz" --threads 1 >/dev/null 2>&1
pass
cmp -s "$W/b1.tar.gz" "$W/b2.tar.gz" || fail "two exports of the same range differ"
out=$(export_b "$W/b1.tar.gz" 2>&1)
assert_eq "$?" 1 "export refuses to replace a bundle"

verify() { # BUNDLE [KEY] -> sets VRC, VOUT
    VOUT=$("$TT_CLI" evidence verify "$1" --pubkey "${2:-$W/signer.pub}" 2>&1)
    VRC=$?
}
verify "$W/b1.tar.gz"
assert_eq "$VRC" 0 "verify of a good bundle"
assert_contains "$VOUT" "OK: signed by sha256:" "verify output"
assert_contains "$VOUT" "17 events" "verify event count"
assert_not_contains "$VOUT" "warning" "verify with the public key: no warning"
# The private key works (its public half is used) but is not for auditors.
verify "$W/b1.tar.gz" "$W/signer.key"
assert_eq "$VRC" 0 "verify with the private key file"
assert_contains "$VOUT" "warning: --pubkey $W/signer.key holds a private key" "private key warning"

# Contents: entry order, events as stored, drill report in range only.
assert_eq "$(tar -tzf "$W/b1.tar.gz" | tr '\n' ' ')" \
    "manifest.json manifest.sig README.txt events.ndjson findings.ndjson drills/run-1/report.json policy.yaml " "entries"
mkdir -p "$W/x"
tar -xzf "$W/b1.tar.gz" -C "$W/x"
assert_eq "$(cat "$W/x/events.ndjson")" \
    "$(tt_events --since $FROM --until $TO)" "events.ndjson equals the stored events"
assert_not_contains "$(cat "$W/x/events.ndjson")" "raw-a" "no raw tokens"
man=$(cat "$W/x/manifest.json")
assert_jq "$man" '.counts.events == 17 and .counts.events_by_type["token.used"] == 12 and .counts.drill_reports == 1 and .counts.findings == 1' "manifest counts"
assert_eq "$(cat "$W/x/findings.ndjson")" '{"id":"f-1","kind":"outlived_incident"}' "findings.ndjson"
assert_jq "$man" '.chain.events == 17 and .chain.checkpoint_interval == 1 and (.chain.checkpoints | length) == 17' "manifest chain"
# By hand, as README.txt says.
(cd "$W/x" && openssl pkeyutl -verify -pubin -inkey "$W/signer.pub" -rawin -in manifest.json \
    -sigfile manifest.sig >/dev/null 2>&1) || fail "openssl does not verify manifest.sig"
pass
(cd "$W/x" && jq -r '.files[] | "\(.sha256)  \(.path)"' manifest.json | sha256sum -c --quiet) ||
    fail "sha256sum -c over the manifest failed"
pass

# Filters.
"$TT_CLI" evidence export --db "$TT_DB" --from $FROM --to $TO --key "$W/signer.key" \
    -o "$W/inc.tar.gz" --incident INC-1 >/dev/null 2>&1
assert_eq "$(tar -xzOf "$W/inc.tar.gz" events.ndjson | jq -r .id | tr '\n' ' ')" \
    "inc-open tok-a use-a1 use-a2 use-a3 use-a4 use-a5 use-a6 rev-a inc-done " "--incident events"
"$TT_CLI" evidence export --db "$TT_DB" --from $FROM --to $TO --key "$W/signer.key" \
    -o "$W/bob.tar.gz" --subject bob >/dev/null 2>&1
assert_eq "$(tar -xzOf "$W/bob.tar.gz" events.ndjson | jq -r .id | tr '\n' ' ')" \
    "inc-open tok-b use-b1 use-b2 use-b3 use-b4 use-b5 use-b6 inc-done " "--subject events"
assert_eq "$(tar -xzOf "$W/bob.tar.gz" findings.ndjson | wc -l)" 0 "--subject bob findings"
assert_eq "$(tar -xzOf "$W/inc.tar.gz" findings.ndjson | wc -l)" 1 "--incident INC-1 findings"

# Tampering: unpack, edit, repack in the bundle's order with GNU tar.
ORDER="manifest.json manifest.sig README.txt events.ndjson findings.ndjson drills/run-1/report.json policy.yaml"
tamper() { # NAME EDIT-COMMAND EXPECTED-MESSAGE [KEY]
    local d=$W/t-$1
    rm -rf "$d"
    mkdir -p "$d"
    tar -xzf "$W/b1.tar.gz" -C "$d"
    (cd "$d" && eval "$2")
    local files=()
    for f in $ORDER; do [ -e "$d/$f" ] && files+=("$f"); done
    [ -e "$d/extra.txt" ] && files+=(extra.txt)
    tar -czf "$W/t-$1.tar.gz" -C "$d" "${files[@]}"
    verify "$W/t-$1.tar.gz" "${4:-}"
    local want=1
    case $3 in OK:*) want=0 ;; esac
    assert_eq "$VRC" "$want" "$1: verify exit"
    assert_contains "$VOUT" "$3" "$1: message"
}
tamper repack_only 'true' 'OK: signed by' # metadata may change; content may not
tamper modify "sed -i '4s/GET/PUT/' events.ndjson" 'events.ndjson: line 4 was modified (it does not match signed event 4)'
tamper remove "sed -i '4d' events.ndjson" 'events.ndjson: signed event 4 is missing (line 4 holds signed event 5)'
tamper insert "sed -i '4i{\"specversion\":\"1.0\",\"id\":\"forged\"}' events.ndjson" 'events.ndjson: line 4 is an inserted event, not in the signed chain'
tamper reorder "sed -i '4{h;d};5G' events.ndjson" 'events.ndjson: lines 4 and 5 are out of order (line 4 holds signed event 5)'
tamper swap_file "cp findings.ndjson policy.yaml" 'policy.yaml: 40 bytes, the manifest says 54'
tamper edit_drill "sed -i 's/pass/fail/' drills/run-1/report.json" 'drills/run-1/report.json: SHA-256'
tamper extra "echo hi > extra.txt" 'unexpected entry: extra.txt (not in the manifest)'
tamper missing "rm policy.yaml" 'missing entry: policy.yaml'
tamper manifest "sed -i 's/\"events\": 17/\"events\": 16/' manifest.json" 'manifest.sig: the signature does not match manifest.json'
tamper wrongkey 'true' 'wrong key: the bundle names signing key' "$W/other.pub"

# Damage to the .tar.gz itself.
size=$(stat -c %s "$W/b1.tar.gz")
head -c $((size / 2)) "$W/b1.tar.gz" >"$W/trunc.tar.gz"
verify "$W/trunc.tar.gz"
assert_eq "$VRC" 1 "truncated: exit"
assert_contains "$VOUT" "truncated" "truncated: message"
for off in 300 $((size / 2)) $((size - 6)); do
    cp "$W/b1.tar.gz" "$W/flip.tar.gz"
    b=$(od -An -tu1 -j "$off" -N1 "$W/flip.tar.gz" | tr -d ' ')
    printf "\\$(printf %03o $((b ^ 0x20)))" | dd of="$W/flip.tar.gz" bs=1 seek="$off" conv=notrunc 2>/dev/null
    verify "$W/flip.tar.gz"
    assert_eq "$VRC" 1 "byte flip at $off: exit"
    assert_contains "$VOUT" "verification FAILED" "byte flip at $off: message"
done
cat "$W/b1.tar.gz" "$W/b1.tar.gz" >"$W/twice.tar.gz"
verify "$W/twice.tar.gz"
assert_eq "$VRC" 1 "appended data: exit"
assert_contains "$VOUT" "data after the end of the gzip stream" "appended data: message"

# Usage errors exit 2.
"$TT_CLI" evidence verify "$W/b1.tar.gz" >/dev/null 2>&1
assert_eq "$?" 2 "verify without --pubkey"
"$TT_CLI" evidence export --db "$TT_DB" --from $TO --to $FROM --key "$W/signer.key" -o "$W/z.tar.gz" >/dev/null 2>&1
assert_eq "$?" 2 "export with from >= to"

tt_done
