#!/usr/bin/env bash
# t_analyze_once.sh - `analyze --once` over events fed through the real
# collector (out of order, with a duplicate): the exact findings and exit
# status 3; a second run reports nothing new (exit 0); a clean stream exits
# 0; `findings` lists what was stored; a bad policy exits 2 naming file:line.
set -u
. "$(dirname "$0")/lib.sh"
A=$TT_IDIR/analyze
POLICY=$A/policy.yaml

tt_start || exit 1
tt_post "$A/stream.ndjson"
assert_eq "$STATUS" 200 "POST of the stream"
assert_json_eq "$BODY" '{"accepted":13,"duplicates":1,"rejected":0,"errors":[]}' "ingest response"

out=$("$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --once --as-of 2026-11-20T12:00:00Z \
    --format json 2>"$TT_TMP/analyze.err")
rc=$?
assert_eq "$rc" 3 "exit status of --once with findings"
got=$(printf '%s\n' "$out" | jq -r '[.time, .kind, .severity, .subject, (.scopes|join(" ")), (.evidence|join(" "))] | join(" | ")')
expect=$(cat "$A/stream.expect")
assert_eq "$got" "$expect" "findings (time | kind | severity | subject | scopes | evidence)"
assert_eq "$(printf '%s\n' "$out" | jq -r .id | sort -u | grep -c '^f-[0-9a-f]\{32\}$')" 10 "distinct well-formed ids"
assert_eq "$(printf '%s\n' "$out" | jq -r .token_id | grep -c '^sha256:')" 10 "token ids are fingerprints"
assert_not_contains "$out" "raw-token" "no raw token in findings"
assert_contains "$(cat "$TT_TMP/analyze.err")" "analysed 13 events" "analyze log"

# Again: everything is checkpointed, nothing new.
out2=$("$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --once --as-of 2026-11-20T12:00:00Z \
    --format json 2>/dev/null)
assert_eq "$?" 0 "exit status of a second --once run"
assert_eq "$out2" "" "second run prints nothing"

# The findings command.
stored=$("$TT_CLI" findings --db "$TT_DB" --format json)
assert_eq "$?" 0 "findings exit status"
assert_ndjson_eq "$stored" "$out" "findings --format json equals what analyze printed"
uar=$("$TT_CLI" findings --db "$TT_DB" --kind used_after_revoke --format json)
assert_eq "$(printf '%s\n' "$uar" | jq -r .subject)" alice "findings --kind used_after_revoke"
late=$("$TT_CLI" findings --db "$TT_DB" --since 2026-11-20T09:55:00Z --format json | jq -r .kind | tr '\n' ' ')
assert_eq "$late" "used_after_expiry idle_token unused_scopes " "findings --since"
table=$("$TT_CLI" findings --db "$TT_DB" --format table)
assert_contains "$table" "KIND" "table header"
assert_contains "$table" "(10 findings)" "table footer"
assert_contains "$table" "was used 2m after it was revoked" "table message"
"$TT_CLI" findings --db "$TT_DB" --kind nope >/dev/null 2>"$TT_TMP/kind.err"
assert_eq "$?" 2 "findings --kind with an unknown kind"

# A clean stream: exit 0, no output.
tt_stop
tt_start || exit 1
tt_post "$A/clean.ndjson"
assert_eq "$STATUS" 200 "POST of the clean stream"
out=$("$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --once --as-of 2026-11-20T12:00:00Z \
    --format json 2>/dev/null)
assert_eq "$?" 0 "exit status of --once on a clean stream"
assert_eq "$out" "" "clean stream prints no findings"

# Errors exit 2 and say where.
"$TT_CLI" analyze --db "$TT_DB" --policy "$A/bad-policy.yaml" --once 2>"$TT_TMP/bad.err"
assert_eq "$?" 2 "exit status with a bad policy"
assert_contains "$(cat "$TT_TMP/bad.err")" "bad-policy.yaml:4: client 'oncall-cli': allowed scope 'db:orders:delete' is not in scopes" "bad policy message"
"$TT_CLI" analyze --db "$TT_TMP/none.db" --policy "$POLICY" --once 2>"$TT_TMP/nodb.err"
assert_eq "$?" 2 "exit status without a database"
tt_done
