#!/usr/bin/env bash
# t_events_cli.sh - `tokentrail events`: each filter (type, token, incident,
# since/until in several time forms, limit) selects exactly the expected
# events in time order; table format; bad flags and bad databases exit 2.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
T='"specversion":"1.0"'
cat >"$TT_TMP/seed" <<NDJSON
{$T,"id":"i1","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"tok-A","client_id":"cli","subject":"alice","scopes":"db:w db:r","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T08:00:00Z","incident_id":"INC-1"}}
{$T,"id":"u1","source":"gw","type":"token.used","time":"2026-11-22T07:05:00Z","data":{"token_id":"tok-A","resource":"db:orders","method":"POST","path":"/orders","status":201,"incident_id":"INC-1"}}
{$T,"id":"u2","source":"gw","type":"token.used","time":"2026-11-22T07:10:00Z","data":{"token_id":"tok-B","resource":"db:users"}}
{$T,"id":"r1","source":"as","type":"token.revoked","time":"2026-11-22T07:20:00Z","data":{"token_id":"tok-A","reason":"done","actor":"bob"}}
{$T,"id":"o1","source":"pd","type":"incident.opened","time":"2026-11-22T06:55:00Z","data":{"incident_id":"INC-1","title":"orders down","severity":"sev1","services":["orders"],"opened_at":"2026-11-22T06:55:00Z"}}
{$T,"id":"c1","source":"pd","type":"incident.resolved","time":"2026-11-22T07:30:00Z","data":{"incident_id":"INC-1","resolved_at":"2026-11-22T07:30:00Z"}}
{$T,"id":"o2","source":"pd","type":"incident.opened","time":"2026-11-22T08:00:00Z","data":{"incident_id":"INC-2","severity":"sev3","services":["users"],"opened_at":"2026-11-22T08:00:00Z"}}
{$T,"id":"i2","source":"as","type":"token.issued","time":"2026-11-22T07:08:00Z","data":{"token_id":"tok-B","client_id":"cli","scopes":"db:r","issued_at":"2026-11-22T07:08:00Z","expires_at":"2026-11-22T07:38:00Z","incident_id":"INC-2"}}
NDJSON
tt_post "$TT_TMP/seed"
assert_eq "$STATUS" 200 "seed request"
assert_jq "$BODY" '.accepted == 8' "seed accepted"
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

assert_eq "$(ids)" "o1 i1 u1 i2 u2 r1 c1 o2" "all events, in time order"
assert_eq "$(ids --type token.used)" "u1 u2" "--type token.used"
assert_eq "$(ids -t incident.opened)" "o1 o2" "-t incident.opened"
assert_eq "$(ids --type token.revoked)" "r1" "--type token.revoked"
assert_eq "$(ids --token tok-A)" "i1 u1 r1" "--token tok-A"
assert_eq "$(ids --token tok-Z)" "" "--token with no events"
assert_eq "$(ids --incident INC-1)" "o1 i1 u1 c1" "--incident INC-1"
assert_eq "$(ids --incident INC-2)" "i2 o2" "--incident INC-2"
assert_eq "$(ids --type token.issued --incident INC-2)" "i2" "--type and --incident"
assert_eq "$(ids --token tok-B --type token.used)" "u2" "--token and --type"
# since is inclusive, until exclusive.
assert_eq "$(ids --since 2026-11-22T07:05:00Z --until 2026-11-22T07:30:00Z)" "u1 i2 u2 r1" "--since/--until RFC 3339"
assert_eq "$(ids --since 2026-11-22T09:05:00+02:00 --until 2026-11-22T07:30:00.000Z)" "u1 i2 u2 r1" "--since with an offset"
assert_eq "$(ids --since 1795331100 --until 1795332600000)" "u1 i2 u2 r1" "--since/--until epoch s and ms"
assert_eq "$(ids --since 2026-11-22T07:30:00Z)" "c1 o2" "--since alone"
assert_eq "$(ids --until 2026-11-22T07:00:00Z)" "o1" "--until alone"
assert_eq "$(ids --since 2026-11-22T07:05:00.001Z --until 2026-11-22T07:05:00.002Z)" "" "an empty window"
assert_eq "$(ids --limit 2)" "o1 i1" "--limit 2"
assert_eq "$(ids -n 1 --type token.used)" "u1" "-n 1 with --type"
assert_eq "$(ids --limit 100)" "o1 i1 u1 i2 u2 r1 c1 o2" "--limit above the count"
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
empty=$("$TT_CLI" events --db "$TT_DB" --format table --token none)
assert_eq "$(printf '%s\n' "$empty" | tail -n 1)" "(0 events)" "empty table footer"

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
bad "not a tokentrail db" "not a tokentrail database" --db "$TT_TMP/other.db"
printf 'this is not sqlite at all, just text\n%.0s' {1..50} >"$TT_TMP/text.db"
bad "not a database file" "tokentrail events:" --db "$TT_TMP/text.db"
tt_done
