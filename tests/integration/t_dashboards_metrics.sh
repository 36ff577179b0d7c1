#!/usr/bin/env bash
# t_dashboards_metrics.sh - every metric named in the alert rules or the
# Grafana dashboard is exported by a real running binary: the collector
# (embedded, and with Kafka configured so the outbox/producer metrics are
# there), the analyzer (following), and the node_exporter textfile that
# tt_drill_prom writes from real `tokentrail drill run` reports (one passing,
# one failing scenario in the same file). The textfile must pass
# `promtool check metrics`. A name that is not exported fails the test.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_IDIR/dashboards/lib_dash.sh"
DASH=$TT_ROOT/dashboards
CHECK=$TT_IDIR/dashboards/check.py
command -v promtool >/dev/null || die "promtool is missing (Debian package prometheus; make deps)"
python3 -c 'import yaml' 2>/dev/null || die "python3 has no yaml module (Debian package python3-yaml)"
E=$TT_TMP/expo
mkdir -p "$E"

# ---- collector, embedded mode, with some traffic ----
tt_start || exit 1
tt_post_str "$(tt_ev_issued dash-1)
{\"specversion\":\"1.0\",\"id\":\"bad-1\",\"source\":\"//t\",\"type\":\"token.issued\",\"time\":\"yesterday\",\"data\":{}}"
assert_eq "$STATUS" 200 "POST one good and one bad event"
curl -s --max-time 10 "$TT_URL/metrics" >"$E/collector.prom"
assert_contains "$(cat "$E/collector.prom")" 'tokentrail_events_accepted_total{type="token.issued"} 1'
COLLECTOR_DB=$TT_DB

# ---- analyzer following that database ----
dash_start_analyzer "$COLLECTOR_DB"
for _ in $(seq 100); do
    curl -s --max-time 5 "http://127.0.0.1:$AN_PORT/metrics" >"$E/analyzer.prom"
    grep -q '^tokentrail_analyzer_events_total{outcome="processed"} [1-9]' "$E/analyzer.prom" && break
    sleep 0.1
done
assert_contains "$(cat "$E/analyzer.prom")" 'tokentrail_analyzer_events_total{outcome="processed"} 1' \
    "analyzer read the stored event"
kill -TERM "$AN_PID"
tt_wait_exit "$AN_PID" 15 || { kill -KILL "$AN_PID"; fail "analyzer did not stop on SIGTERM"; }
_tt_forget "$AN_PID"
tt_stop
assert_eq "$TT_RC" 0 "collector exit status"

# ---- collector with Kafka configured (no broker listening: degraded) ----
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tt_start --kafka-brokers "127.0.0.1:$dead" || exit 1
curl -s --max-time 10 "$TT_URL/metrics" >"$E/collector-kafka.prom"
assert_contains "$(cat "$E/collector-kafka.prom")" "tokentrail_outbox_oldest_age_seconds" \
    "collector with --kafka-brokers exports the outbox metrics"
tt_stop

# ---- drills: a passing and a failing scenario into one textfile ----
dash_build_drill_tools
dash_drill_server
TEXTFILE=$E/tokentrail_drill.prom
dash_drill dash-pass 2000 "$TEXTFILE"
assert_eq "$DRILL_RC" 0 "passing drill exit status"
dash_drill dash-fail 1 "$TEXTFILE"
assert_eq "$DRILL_RC" 1 "failing drill exit status"
kill -TERM "$DRILL_SERVER_PID"; wait "$DRILL_SERVER_PID" 2>/dev/null; _tt_forget "$DRILL_SERVER_PID"
tf=$(cat "$TEXTFILE")
assert_contains "$tf" 'tokentrail_drill_passed{scenario="dash-pass"} 1'
assert_contains "$tf" 'tokentrail_drill_passed{scenario="dash-fail"} 0'
assert_contains "$tf" 'tokentrail_drill_last_success_timestamp_seconds{scenario="dash-fail"} 0.000'
assert_contains "$tf" 'tokentrail_drill_thresholds_failed{scenario="dash-fail"} 1'
assert_contains "$tf" 'tokentrail_drill_revocation_propagation_seconds_count{scenario="dash-pass",resource_server="rs-fast"} 2'
assert_contains "$tf" 'tokentrail_drill_revocation_propagation_seconds{scenario="dash-fail",resource_server="rs-fast",quantile="1"} 0.'
lint=$(promtool check metrics <"$TEXTFILE" 2>&1)
assert_eq "$?" 0 "promtool check metrics on the drill textfile: $lint"
assert_eq "$lint" "" "promtool check metrics findings on the drill textfile"
ls "$E" | grep -v -E '\.prom$' | grep -q . && fail "temporary files left next to the textfile: $(ls "$E")"

# ---- every name in the rules and the dashboard is exported ----
out=$(python3 "$CHECK" missing "$DASH/prometheus/alerts.yml" "$DASH/grafana/tokentrail.json" "$E"/*.prom 2>&1)
rc=$?
printf '%s\n' "$out"
assert_eq "$rc" 0 "metrics named in rules/dashboard but not exported"
assert_not_contains "$out" "problem:"

# ... and the check would notice one that is not.
sed 's/tokentrail_store_ready{/tokentrail_store_readyy{/' "$DASH/prometheus/alerts.yml" >"$TT_TMP/typo.yml"
out=$(python3 "$CHECK" missing "$TT_TMP/typo.yml" "$DASH/grafana/tokentrail.json" "$E"/*.prom 2>&1)
assert_ne "$?" 0 "a misspelt metric name is caught"
assert_contains "$out" "problem: tokentrail_store_readyy is not exported"
tt_done
