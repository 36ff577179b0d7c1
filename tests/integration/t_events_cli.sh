#!/usr/bin/env bash
# t_events_cli.sh - `tokentrail events`: each filter (type, token, incident,
# since/until in several time forms, limit) selects exactly the expected
# events in time order; table format; bad flags and bad databases exit 2.
# Regressions: the table showed "-> 0" for a use without status and
# "reason= actor=" for a revocation without them, and cut token ids so that
# the id shown did not work with --token; --limit accepted an overflowing
# number; `findings` on a store never analysed failed with "no such table"
# (and printed the table header first) instead of listing nothing.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
T='"specversion":"1.0"'
cat >"$TT_TMP/seed" <<NDJSON
{$T,"id":"i1","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"tok-A","client_id":"cli","subject":"alice","scopes":"db:w db:r","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T08:00:00Z","incident_id":"INC-1"}}
{$T,"id":"u1","source":"gw","type":"token.used","time":"2026-11-22T07:05:00Z","data":{"token_id":"tok-A","resource":"db:orders","method":"POST","path":"/orders","status":201,"incident_id":"INC-1"}}
{$T,"id":"u2","source":"gw","type":"token.used","time":"2026-11-22T07:10:00Z","data":{"token_id":"tok-B","resource":"db:users"}}
{$T,"id":"r1","source":"as","type":"token.revoked","time":"2026-11-22T07:20:00Z","data":{"token_id":"tok-A","reason":"done","actor":"bob"}}
{$T,"id":"r2","source":"as","type":"token.revoked","time":"2026-11-22T07:25:00Z","data":{"token_id":"tok-B"}}
{$T,"id":"i3","source":"as","type":"token.issued","time":"2026-11-22T08:10:00Z","data":{"token":"raw-token-C","client_id":"cli","scopes":"db:r","issued_at":"2026-11-22T08:10:00Z","expires_at":"2026-11-22T08:40:00Z"}}
{$T,"id":"o1","source":"pd","type":"incident.opened","time":"2026-11-22T06:55:00Z","data":{"incident_id":"INC-1","title":"orders down","severity":"sev1","services":["orders"],"opened_at":"2026-11-22T06:55:00Z"}}
{$T,"id":"c1","source":"pd","type":"incident.resolved","time":"2026-11-22T07:30:00Z","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:30:00Z"}}
{$T,"id":"o2","source":"pd","type":"incident.opened","time":"2026-11-22T08:00:00Z","data":{"incident_id":"INC-2","severity":"sev3","services":["users"],"opened_at":"2026-11-22T08:00:00Z"}}
{$T,"id":"i2","source":"as","type":"token.issued","time":"2026-11-22T07:08:00Z","data":{"token_id":"tok-B","client_id":"cli","scopes":"db:r","issued_at":"2026-11-22T07:08:00Z","expires_at":"2026-11-22T07:38:00Z","incident_id":"INC-2"}}
NDJSON
tt_post "$TT_TMP/seed"
assert_eq "$STATUS" 200 "seed request"
assert_jq "$BODY" '.accepted == 10' "seed accepted"
tt_stop
assert_eq "$TT_RC" 0 "exit status"

# ids ARGS...: the ids `events` prints with these filters, space separated.
ids() {
    local out rc
    out=$("$TT_CLI" events --db "$TT_DB" --format json "$@" 2>"$TT_TMP/err")
    rc=$?
    [ "$rc" -eq 0 ] || echo "exit $rc: $(cat "$TT_TMP/err")"
    printf '%s\n' "$out" | jq -r .id | paste -sd' '
}

assert_eq "$(ids)" "o1 i1 u1 i2 u2 r1 r2 c1 o2 i3" "all events, in time order"
assert_eq "$(ids --type token.used)" "u1 u2" "--type token.used"
assert_eq "$(ids -t incident.opened)" "o1 o2" "-t incident.opened"
assert_eq "$(ids --type token.revoked)" "r1 r2" "--type token.revoked"
assert_eq "$(ids --token tok-A)" "i1 u1 r1" "--token tok-A"
assert_eq "$(ids --token tok-Z)" "" "--token with no events"
assert_eq "$(ids --incident INC-1)" "o1 i1 u1 c1" "--incident INC-1"
assert_eq "$(ids --incident INC-2)" "i2 o2" "--incident INC-2"
assert_eq "$(ids --type token.issued --incident INC-2)" "i2" "--type and --incident"
assert_eq "$(ids --token tok-B --type token.used)" "u2" "--token and --type"
# since is inclusive, until exclusive.
assert_eq "$(ids --since 2026-11-22T07:05:00Z --until 2026-11-22T07:30:00Z)" "u1 i2 u2 r1 r2" "--since/--until RFC 3339"
assert_eq "$(ids --since 2026-11-22T09:05:00+02:00 --until 2026-11-22T07:30:00.000Z)" "u1 i2 u2 r1 r2" "--since with an offset"
assert_eq "$(ids --since 1795331100 --until 1795332600000)" "u1 i2 u2 r1 r2" "--since/--until epoch s and ms"
assert_eq "$(ids --since 2026-11-22T07:30:00Z)" "c1 o2 i3" "--since alone"
assert_eq "$(ids --until 2026-11-22T07:00:00Z)" "o1" "--until alone"
assert_eq "$(ids --since 2026-11-22T07:05:00.001Z --until 2026-11-22T07:05:00.002Z)" "" "an empty window"
assert_eq "$(ids --limit 2)" "o1 i1" "--limit 2"
assert_eq "$(ids -n 1 --type token.used)" "u1" "-n 1 with --type"
assert_eq "$(ids --limit 100)" "o1 i1 u1 i2 u2 r1 r2 c1 o2 i3" "--limit above the count"
# A duration means "that long ago" (the events are from 2026-11-22).
assert_eq "$(ids --since 3650d --type incident.opened)" "o1 o2" "--since 3650d"
assert_eq "$(ids --until 3650d)" "" "--until 3650d"

# Without --format, a pipe gets NDJSON.
out=$("$TT_CLI" events --db "$TT_DB" --type incident.resolved | jq -c .)
assert_json_eq "$out" '{"specversion":"1.0","id":"c1","source":"pd","type":"incident.resolved","time":"2026-11-22T07:30:00.000Z","datacontenttype":"application/json","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:30:00.000Z"}}' "default format when piped"

# The table: a header, one row per event, a count.
table=$("$TT_CLI" events --db "$TT_DB" --format table --token tok-A)
assert_eq "$?" 0 "exit status, table"
printf '%s\n' "$table" | sed 's/^/# /'
assert_eq "$(printf '%s\n' "$table" | head -n 1 | tr -s ' ')" "TIME TYPE TOKEN/INCIDENT SUBJECT/CLIENT DETAIL" "table header"
assert_eq "$(printf '%s\n' "$table" | tail -n 1)" "(3 events)" "table footer"
assert_eq "$(printf '%s\n' "$table" | grep -c '^2026-11-22T07:')" 3 "table rows"
row=$(printf '%s\n' "$table" | grep token.issued | tr -s ' ')
assert_eq "$row" "2026-11-22T07:00:00.000Z token.issued tok-A alice scopes=[db:r db:w] expires=2026-11-22T08:00:00.000Z" "token.issued row"
row=$(printf '%s\n' "$table" | grep token.used | tr -s ' ')
assert_eq "$row" "2026-11-22T07:05:00.000Z token.used tok-A db:orders POST /orders -> 201" "token.used row"
row=$(printf '%s\n' "$table" | grep token.revoked | tr -s ' ')
assert_eq "$row" "2026-11-22T07:20:00.000Z token.revoked tok-A reason=done actor=bob" "token.revoked row"
empty=$("$TT_CLI" events --db "$TT_DB" --format table --token none)
assert_eq "$(printf '%s\n' "$empty" | tail -n 1)" "(0 events)" "empty table footer"

# Absent optional fields are left out of DETAIL, not shown as 0 or empty.
table=$("$TT_CLI" events --db "$TT_DB" --format table --token tok-B)
printf '%s\n' "$table" | sed 's/^/# /'
row=$(printf '%s\n' "$table" | grep token.used | tr -s ' ' | sed 's/ $//')
assert_eq "$row" "2026-11-22T07:10:00.000Z token.used tok-B db:users" "token.used row without method, path, status"
row=$(printf '%s\n' "$table" | grep token.revoked | tr -s ' ' | sed 's/ $//')
assert_eq "$row" "2026-11-22T07:25:00.000Z token.revoked tok-B" "token.revoked row without reason, actor"

# Token ids are shown whole: the id in the table selects the token's events.
fp=$(tt_fingerprint raw-token-C)
table=$("$TT_CLI" events --db "$TT_DB" --format table --since 2026-11-22T08:05:00Z)
shown=$(printf '%s\n' "$table" | awk '$2 == "token.issued" { print $3 }')
assert_eq "$shown" "$fp" "token id shown in full"
assert_eq "$(ids --token "$shown")" "i3" "--token with the id the table shows"

# findings on a store that was never analysed: no findings, exit 0.
out=$("$TT_CLI" findings --db "$TT_DB" --format table 2>"$TT_TMP/err")
assert_eq "$?" 0 "findings on a store never analysed: exit status"
assert_eq "$(cat "$TT_TMP/err")" "" "findings on a store never analysed: stderr"
assert_eq "$(printf '%s\n' "$out" | head -n 1 | tr -s ' ')" "TIME KIND SEVERITY TOKEN CLIENT MESSAGE" "findings on a store never analysed: header"
assert_eq "$(printf '%s\n' "$out" | tail -n +2)" "(0 findings)" "findings on a store never analysed: count"
out=$("$TT_CLI" findings --db "$TT_DB" --format json)
assert_eq "$?" 0 "findings --format json on a store never analysed: exit status"
assert_eq "$out" "" "findings --format json on a store never analysed: output"

# Bad flags: exit 2 with a message on stderr and nothing on stdout.
bad() {
    local what=$1 msg=$2 out err rc
    shift 2
    out=$("$TT_CLI" events "$@" 2>"$TT_TMP/err")
    rc=$?
    err=$(cat "$TT_TMP/err")
    assert_eq "$rc" 2 "exit status, $what"
    assert_contains "$err" "$msg" "stderr, $what"
    assert_eq "$out" "" "stdout, $what"
}
bad "--type bogus" "unknown event type 'bogus'" --db "$TT_DB" --type bogus
bad "--limit 0" "--limit: '0' is not a positive number" --db "$TT_DB" --limit 0
bad "--limit abc" "--limit: 'abc' is not a positive number" --db "$TT_DB" --limit abc
bad "--limit -3" "is not a positive number" --db "$TT_DB" --limit -3
bad "--limit overflow" "--limit: '99999999999999999999' is too large" --db "$TT_DB" --limit 99999999999999999999
bad "--limit +5" "--limit: '+5' is not a positive number" --db "$TT_DB" --limit +5
bad "--since garbage" "--since: 'yesterday' is not a time" --db "$TT_DB" --since yesterday
bad "--until bad date" "--until: '2026-02-30T00:00:00Z' is not a time" --db "$TT_DB" --until 2026-02-30T00:00:00Z
bad "--format xml" "--format: use table or json" --db "$TT_DB" --format xml
bad "unknown flag" "tokentrail events --help" --db "$TT_DB" --colour
bad "stray argument" "unexpected argument 'extra'" --db "$TT_DB" extra
bad "no --db" "--db PATH is required"
bad "missing db" "cannot open database" --db "$TT_TMP/no/such.db"
bad "missing db file" "cannot open database" --db "$TT_TMP/absent.db"
pass
[ -e "$TT_TMP/absent.db" ] && fail "events created $TT_TMP/absent.db"
sqlite3 "$TT_TMP/other.db" 'CREATE TABLE t (x INTEGER);'
bad "not a tokentrail db" "a SQLite database of another application (1 table, none of tokentrail's)" --db "$TT_TMP/other.db"
printf 'this is not sqlite at all, just text\n%.0s' {1..50} >"$TT_TMP/text.db"
bad "not a database file" "tokentrail events:" --db "$TT_TMP/text.db"

# findings on a bad --db: exit 2, a precise message, nothing on stdout (also
# not the table header).
fbad() {
    local what=$1 msg=$2 out err rc
    shift 2
    out=$("$TT_CLI" findings --format table "$@" 2>"$TT_TMP/err")
    rc=$?
    err=$(cat "$TT_TMP/err")
    assert_eq "$rc" 2 "findings exit status, $what"
    assert_eq "$err" "tokentrail findings: $msg" "findings stderr, $what"
    assert_eq "$out" "" "findings stdout, $what"
}
fbad "missing db file" "$TT_TMP/absent.db: No such file or directory" --db "$TT_TMP/absent.db"
fbad "not a database file" "$TT_TMP/text.db: not a SQLite database" --db "$TT_TMP/text.db"
fbad "not a tokentrail db" "$TT_TMP/other.db: not a tokentrail database (no events or findings table)" --db "$TT_TMP/other.db"
[ -e "$TT_TMP/absent.db" ] && fail "findings created $TT_TMP/absent.db"
tt_done
