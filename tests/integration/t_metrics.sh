#!/usr/bin/env bash
# t_metrics.sh - /metrics after a known mix of requests: exact accepted,
# duplicate and rejected counters by type and reason, request counters by
# code, histogram counts, well-formed exposition text; /readyz.
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1

cat >"$TT_TMP/mixed" <<'NDJSON'
{"specversion":"1.0","id":"m1","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"t1","client_id":"c","scopes":"a","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T08:00:00Z"}}
{"specversion":"1.0","id":"m2","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"t2","client_id":"c","scopes":"a","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T08:00:00Z"}}
{"specversion":"1.0","id":"m1","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"t1","client_id":"c","scopes":"a","issued_at":"2026-11-22T07:00:00Z","expires_at":"2026-11-22T08:00:00Z"}}
{"specversion":"1.0","id":"m3","source":"gw","type":"token.used","time":"2026-11-22T07:01:00Z","data":{"token_id":"t1","resource":"db"}}
{"specversion":"1.0","id":"m4","source":"pd","type":"incident.opened","time":"2026-11-22T06:59:00Z","data":{"incident_id":"I1","severity":"sev1","services":["db"],"opened_at":"2026-11-22T06:59:00Z"}}
{"specversion":"1.0","id":"r1","source":"as","type":"token.issued","time":"not-a-time","data":{}}
{"specversion":"1.0","id":"r2","source":"gw","type":"token.used","time":"2026-11-22T07:01:00Z","data":{"token_id":"t1"}}
{"specversion":"1.0","id":"r3","source":"gw","type":"token.used","time":"2026-11-22T07:01:00Z","data":{"token_id":"t1","resource":"db","status":"ok"}}
{"specversion":"1.0","id":"r4","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token_id":"t3","password":"hunter2"}}
{"specversion":"1.0","id":"r5","source":"as","type":"token.exchanged","time":"2026-11-22T07:00:00Z","data":{}}
{"specversion":"1.0","id":"r6"
[1]
{"specversion":"1.0","id":"r8","source":"pd","type":"incident.resolved","time":"2026-11-22T07:00:00Z","data":{"incident_id":"I1"}}
NDJSON
tt_post "$TT_TMP/mixed"
assert_eq "$STATUS" 200 "mixed request"
assert_jq "$BODY" '.accepted == 4 and .duplicates == 1 and .rejected == 8' "mixed request counts"

printf '{"id":"x"}\n' >"$TT_TMP/allbad"
tt_post "$TT_TMP/allbad"
assert_eq "$STATUS" 400 "all-invalid request"
tt_post "$TT_TMP/allbad" -H 'Content-Type: text/csv'
assert_eq "$STATUS" 415 "bad content type"

# A wrong path and a wrong method count too (a misconfigured sender shows).
tt_get /v1/nope
assert_eq "$STATUS" 404 "GET of an unknown path"
tt_curl -s -o /dev/null -X POST "$TT_URL/metrics"
tt_get /metrics -D "$TT_TMP/mh"
assert_eq "$STATUS" 200 "/metrics status"
assert_contains "$(cat "$TT_TMP/mh")" "text/plain; version=0.0.4" "/metrics content type"
printf '%s\n' "$BODY" >"$TT_TMP/metrics.txt"

# Every sample of a family, as "labels value" lines, sorted.
family() {
    grep "^$1[{ ]" "$TT_TMP/metrics.txt" | sed "s/^$1//" | sort
}
# expected_family NAME "LABELS VALUE"...: any listed sample with its value,
# every other sample of the family 0.
check_family() {
    local name=$1 line labels value want
    shift
    local -A exp=() got=()
    for line in "$@"; do
        exp["${line% *}"]=${line##* }
    done
    local seen=0
    while read -r labels value; do
        seen=$((seen + 1))
        want=${exp[$labels]:-0}
        assert_eq "$value" "$want" "$name$labels"
        got[$labels]=1
    done < <(family "$name")
    assert_lt 0 "$seen" "samples of $name"
    for labels in "${!exp[@]}"; do
        [ -n "${got[$labels]:-}" ] || fail "$name$labels: no such sample"
    done
}

check_family tokentrail_events_accepted_total \
    '{type="token.issued"} 2' '{type="token.used"} 1' '{type="incident.opened"} 1'
check_family tokentrail_events_duplicate_total '{type="token.issued"} 1'
check_family tokentrail_events_rejected_total \
    '{type="token.issued",reason="bad_timestamp"} 1' \
    '{type="token.used",reason="missing_field"} 1' \
    '{type="token.used",reason="wrong_type"} 1' \
    '{type="token.issued",reason="unknown_field"} 1' \
    '{type="unknown",reason="unknown_type"} 1' \
    '{type="unknown",reason="parse_error"} 1' \
    '{type="unknown",reason="not_object"} 1' \
    '{type="incident.resolved",reason="missing_field"} 1' \
    '{type="unknown",reason="missing_field"} 1'
check_family tokentrail_http_requests_total '{code="200"} 1' '{code="400"} 1' '{code="415"} 1' \
    '{code="404"} 1' '{code="405"} 1'
assert_eq "$(family tokentrail_http_requests_in_flight)" " 0" "requests in flight"
assert_eq "$(family tokentrail_ingest_body_bytes_total)" " $(($(wc -c <"$TT_TMP/mixed") + $(wc -c <"$TT_TMP/allbad")))" "body bytes (the 415 body is not read)"
assert_eq "$(family tokentrail_http_request_duration_seconds_count)" " 3" "request duration histogram count"
assert_eq "$(family tokentrail_store_commit_duration_seconds_count)" " 1" "commit duration histogram count"
assert_eq "$(family tokentrail_store_commits_total)" " 1" "store commits"
assert_eq "$(family tokentrail_store_ready)" " 1" "store ready gauge"
assert_contains "$(family tokentrail_build_info)" "version=\"$(cat "$TT_ROOT/VERSION")\"" "build info"
size=$(family tokentrail_store_size_bytes | tr -d ' ')
assert_lt 0 "$size" "store size gauge"

# Histograms: cumulative buckets never decrease and +Inf equals _count.
for h in tokentrail_http_request_duration_seconds tokentrail_store_commit_duration_seconds; do
    r=$(awk -v h="${h}_bucket" 'index($1, h "{") == 1 { if ($2 < prev) bad = 1; prev = $2; last = $2 }
        END { print (bad ? "decreasing" : "ok") " " last }' "$TT_TMP/metrics.txt")
    assert_eq "$r" "ok $(family "${h}_count" | tr -d ' ')" "$h buckets (monotonic, +Inf = count)"
    assert_eq "$(grep -c "^${h}_bucket{le=\"+Inf\"}" "$TT_TMP/metrics.txt")" 1 "$h +Inf bucket"
done

# The exposition format: HELP and TYPE for every family, samples well formed.
bad=$(awk '
    /^# HELP / { help[$3] = 1; next }
    /^# TYPE / { type[$3] = $4; next }
    /^$/ { next }
    {
        if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+Inf-]+$/) { print "malformed: " $0; next }
        name = $1; sub(/\{.*/, "", name)
        base = name; sub(/_(bucket|sum|count)$/, "", base)
        if (!(name in type) && !(base in type && type[base] == "histogram")) print "no TYPE: " name
        if (!(name in help) && !(base in help)) print "no HELP: " name
    }' "$TT_TMP/metrics.txt")
assert_eq "$bad" "" "exposition format problems"

tt_get /readyz
assert_eq "$STATUS" 200 "/readyz"
assert_json_eq "$BODY" '{"status":"ready","store":"ok"}' "/readyz body"
tt_get /healthz
assert_json_eq "$BODY" '{"status":"ok"}' "/healthz body"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
