#!/usr/bin/env bash
# t_dashboards_rules.sh - the alert rules, their promtool unit tests, the
# runbooks and the Grafana dashboard, checked with Prometheus's own tooling:
# promtool check rules / config, promtool test rules (every alert firing and
# not firing), one runbook per alert, and every dashboard query parsed by
# promtool. Needs promtool (Debian package prometheus) and python3-yaml.
set -u
. "$(dirname "$0")/lib.sh"
DASH=$TT_ROOT/dashboards
CHECK=$TT_IDIR/dashboards/check.py

command -v promtool >/dev/null || die "promtool is missing (Debian package prometheus; make deps)"
python3 -c 'import yaml' 2>/dev/null || die "python3 has no yaml module (Debian package python3-yaml)"

out=$(promtool check rules "$DASH/prometheus/alerts.yml" 2>&1)
assert_eq "$?" 0 "promtool check rules alerts.yml: $out"
assert_contains "$out" "SUCCESS: 14 rules found" "promtool check rules"

out=$(cd "$DASH/prometheus" && promtool check config prometheus.yml 2>&1)
assert_eq "$?" 0 "promtool check config prometheus.yml: $out"

out=$(promtool test rules "$DASH"/prometheus/tests/*.yml 2>&1)
rc=$?
assert_eq "$rc" 0 "promtool test rules"
assert_not_contains "$out" FAILED "promtool test rules"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | head -60 >&2
assert_eq "$(printf '%s\n' "$out" | grep -c SUCCESS)" "$(ls "$DASH"/prometheus/tests/*.yml | wc -l)" \
    "promtool test files passed"

out=$(python3 "$CHECK" coverage "$DASH/prometheus/alerts.yml" "$DASH"/prometheus/tests/*.yml 2>&1)
assert_eq "$?" 0 "every alert firing and not firing in a promtool test: $out"

out=$(python3 "$CHECK" runbooks "$DASH/prometheus/alerts.yml" "$TT_ROOT" 2>&1)
assert_eq "$?" 0 "one runbook per alert: $out"

out=$(python3 "$CHECK" dashboard "$DASH/grafana/tokentrail.json" "$TT_TMP/dashboard-queries.yml" 2>&1)
assert_eq "$?" 0 "dashboard structure: $out"
out=$(promtool check rules "$TT_TMP/dashboard-queries.yml" 2>&1)
assert_eq "$?" 0 "every dashboard query is valid PromQL: $out"

# The checks catch what they should (a check that passes everything is no check).
sed 's|docs/runbooks/scope-drift.md|docs/runbooks/no-such-page.md|' "$DASH/prometheus/alerts.yml" >"$TT_TMP/bad-alerts.yml"
out=$(python3 "$CHECK" runbooks "$TT_TMP/bad-alerts.yml" "$TT_ROOT" 2>&1)
assert_ne "$?" 0 "runbook check on a broken runbook_url"
assert_contains "$out" "TokentrailScopeDrift: runbook docs/runbooks/no-such-page.md does not exist"
assert_contains "$out" "docs/runbooks/scope-drift.md belongs to no alert"
out=$(python3 "$CHECK" coverage "$DASH/prometheus/alerts.yml" "$DASH/prometheus/tests/analyzer.yml" 2>&1)
assert_ne "$?" 0 "coverage check with the collector tests left out"
assert_contains "$out" "no promtool test shows TokentrailCollectorDown firing"
tt_done
