#!/usr/bin/env bash
# demo.sh - `make demo`: build, start the OAuth lab and a collector on SQLite,
# run the shipped revocation drill (drills/scenarios/lab-revoke.yaml), run
# `tokentrail analyze --once` when that command exists, say where the HTML
# report is and what failed and why, then stop everything it started (by PID).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BIN=$ROOT/bin/tokentrail
WORK=$(mktemp -d /tmp/tt-demo.XXXXXX)
chmod 0755 "$WORK"   # Apache's children (www-data) read the lab directory inside
LAB=$WORK/lab
COLLECTOR_PID=

say() { printf '\n== %s\n' "$*"; }
cleanup() {
    tests/lab/lab.sh stop "$LAB" >/dev/null 2>&1 || true
    if [ -n "$COLLECTOR_PID" ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        kill -TERM "$COLLECTOR_PID"
        wait "$COLLECTOR_PID" 2>/dev/null || true
    fi
    echo "demo: stopped the lab and the collector (files kept in $WORK)"
}
trap cleanup EXIT

say "build"
make -s bin/tokentrail || exit 2

say "lab dependencies (apache2 + mod_oauth2, oidc-provider)"
tests/lab/lab.sh deps || exit 2

say "collector on SQLite ($WORK/demo.db)"
"$BIN" collect --listen 127.0.0.1:0 --db "$WORK/demo.db" --port-file "$WORK/port" \
    >"$WORK/collector.log" 2>&1 &
COLLECTOR_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
[ -s "$WORK/port" ] || { echo "demo: the collector did not start; see $WORK/collector.log"; exit 2; }
export TT_COLLECTOR_URL=http://127.0.0.1:$(cat "$WORK/port")/v1/events
echo "collector: $TT_COLLECTOR_URL (pid $COLLECTOR_PID)"

say "OAuth lab (oidc-provider AS, Apache mod_oauth2 resource servers)"
LAB_COLLECTOR_URL=$TT_COLLECTOR_URL tests/lab/lab.sh start "$LAB" || exit 2
set -a
. "$LAB/lab.env"
set +a

say "drill: drills/scenarios/lab-revoke.yaml"
"$BIN" drill run drills/scenarios/lab-revoke.yaml --out "$WORK/report"
drill_rc=$?

if "$BIN" analyze --help >/dev/null 2>&1; then
    say "tokentrail analyze --once"
    policy=drills/scenarios/lab-policy.yaml
    if [ -f "$policy" ]; then
        "$BIN" analyze --db "$WORK/demo.db" --policy "$policy" --once --format table || true
    else
        echo "no $policy; skipped"
    fi
else
    say "tokentrail analyze: not built yet in this tree; skipped"
fi

say "what the drill found"
case $drill_rc in
0) echo "PASS: every threshold held." ;;
1) echo "FAIL: these thresholds did not hold:"
   jq -r '.thresholds[] | select(.pass | not) | "  \(.name): measured \(.value) over \(.samples) samples"' "$WORK/report/report.json"
   echo "Why: rs-cache5 caches introspection results for 5 s (mod_oauth2 expiry=5), so it"
   echo "keeps accepting a revoked token for up to ~5 s; rs-nocache refuses it at the first probe." ;;
*) echo "ERROR: the drill could not run (exit $drill_rc); see the message above." ;;
esac
echo "events in the collector: $("$BIN" events --db "$WORK/demo.db" --format json | grep -c .)"
echo "HTML report: $WORK/report/report.html"
echo "JSON report: $WORK/report/report.json   JUnit: $WORK/report/junit.xml"
