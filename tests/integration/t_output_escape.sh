#!/usr/bin/env bash
# t_output_escape.sh - regression: `events --format table`, `findings
# --format table` and `analyze --format table` printed control characters
# from event fields as they were, so a posted event could colour or clear the
# reader's terminal, set its title, or forge a table row. Now every field in
# a table shows them as visible escapes (\e \r \n \t \xHH \u0080..\u009f,
# backslash as \\; docs/events.md), one line per row, while --format json
# keeps the exact values.
set -u
. "$(dirname "$0")/lib.sh"
POLICY=$TT_ROOT/analyzers/policies/example.yaml

# ctl TEXT: how many bytes of TEXT are control characters other than the
# line ends (C0 controls, DEL, and C1 controls U+0080..U+009F in UTF-8).
ctl() {
    local c0 c1
    c0=$(printf '%s' "$1" | LC_ALL=C tr -d '\n\040-\176\200-\377' | wc -c)
    c1=$(printf '%s' "$1" | LC_ALL=C grep -c $'\xc2[\x80-\x9f]')
    echo $((c0 + c1))
}

tt_start || exit 1
T='"specversion":"1.0"'
# JSON escapes: \u001b ESC, \u0007 BEL, \u007f DEL, \u009b CSI (C1), \r \n \t.
cat >"$TT_TMP/hostile" <<NDJSON
{$T,"id":"u1","source":"gw","type":"token.used","time":"2026-11-22T07:05:00Z","data":{"token_id":"a\u001b[31mRED","resource":"r\nFAKE LINE 2026-11-22T07:06:00.000Z token.revoked","path":"/\u001b]0;pwned\u0007x\u007f","subject":"s\u009b2J\tq"}}
{$T,"id":"i1","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token":"raw-hostile","client_id":"\u001b[2J\r","subject":"back\\\\slash","scopes":"db:orders:read db:billing:admin","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T09:00:00Z"}}
{$T,"id":"o1","source":"pd","type":"incident.opened","time":"2026-11-22T06:55:00Z","data":{"incident_id":"INC-\u001b[1A","title":"t\r\u001b[K","severity":"sev1","services":["svc\u0007"],"opened_at":"2026-11-22T06:55:00Z"}}
NDJSON
tt_post "$TT_TMP/hostile"
assert_eq "$STATUS" 200 "hostile events POST"
assert_jq "$BODY" '.accepted == 3' "hostile events accepted"

# The table: only printable text, one line per event, the escapes visible.
table=$("$TT_CLI" events --db "$TT_DB" --format table)
assert_eq "$?" 0 "events table exit status"
printf '%s\n' "$table" | sed 's/^/# /'
assert_eq "$(ctl "$table")" 0 "control bytes in the events table"
assert_eq "$(printf '%s\n' "$table" | wc -l)" 5 "events table lines (header, 3 rows, count)"
assert_eq "$(printf '%s\n' "$table" | tail -n 1)" "(3 events)" "events table footer"
assert_eq "$(printf '%s\n' "$table" | grep -c '^2026-11-22T0')" 3 "events table rows"
row=$(printf '%s\n' "$table" | grep token.used | tr -s ' ')
assert_eq "$row" '2026-11-22T07:05:00.000Z token.used a\e[31mRED s\u009b2J\tq r\nFAKE LINE 2026-11-22T07:06:00.000Z token.revoked /\e]0;pwned\x07x\x7f' "token.used row"
row=$(printf '%s\n' "$table" | grep token.issued | tr -s ' ')
assert_contains "$row" ' back\\slash scopes=' "backslash shown doubled"
row=$(printf '%s\n' "$table" | grep incident.opened | tr -s ' ')
assert_eq "$row" '2026-11-22T06:55:00.000Z incident.opened INC-\e[1A sev1 t\r\e[K [svc\x07]' "incident.opened row"

# JSON keeps the exact values (escaped by the JSON encoder, not by us).
assert_eq "$(tt_events --type token.used | jq -r '.data.token_id == "a\u001b[31mRED" and .data.resource == "r\nFAKE LINE 2026-11-22T07:06:00.000Z token.revoked" and .data.path == "/\u001b]0;pwned\u0007x\u007f" and .data.subject == "s\u009b2J\tq"')" true "exact values in --format json"
assert_eq "$(tt_events --type token.used | wc -l)" 1 "one NDJSON line"
# The hostile token id still works as a filter.
assert_eq "$(tt_events --token $'a\e[31mRED' | jq -r .id)" u1 "--token with a control character"

# Findings: the client_id is "\e[2J\r" (clear screen, carriage return).
"$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --once --as-of 2026-11-22T12:00:00Z \
    --format table >"$TT_TMP/analyze.out" 2>"$TT_TMP/analyze.err"
assert_eq "$?" 3 "analyze --once exit status (findings)"
out=$(cat "$TT_TMP/analyze.out")
assert_eq "$(ctl "$out")" 0 "control bytes in analyze --format table"
assert_contains "$out" 'of \e[2J\r' "analyze table shows the client_id escaped"

ftable=$("$TT_CLI" findings --db "$TT_DB" --format table)
assert_eq "$?" 0 "findings table exit status"
printf '%s\n' "$ftable" | sed 's/^/# /'
assert_eq "$(ctl "$ftable")" 0 "control bytes in the findings table"
n=$("$TT_CLI" findings --db "$TT_DB" --format json | wc -l)
assert_lt 0 "$n" "findings stored"
assert_eq "$(printf '%s\n' "$ftable" | wc -l)" $((n + 2)) "findings table lines (header, rows, count)"
assert_eq "$(printf '%s\n' "$ftable" | grep -c '^2026-11-22T0.*  \\e\[2J\\r  ')" "$n" "CLIENT column escaped in every row"
assert_contains "$ftable" 'token sha256:' "findings messages"
assert_not_contains "$ftable" $'\e' "no ESC in the findings table"
kinds=$("$TT_CLI" findings --db "$TT_DB" --format json | jq -r 'select(.client_id == "\u001b[2J\r") | .kind' | wc -l)
assert_eq "$kinds" "$n" "findings --format json keeps the exact client_id"

tt_stop
assert_eq "$TT_RC" 0 "collector exit status"
tt_done
