#!/usr/bin/env bash
# t_dashboards_prometheus.sh - a real Prometheus server (1 s scrape and rule
# evaluation) with dashboards/prometheus/alerts.yml loaded, scraping a running
# collector, a following analyzer and a drill textfile (served as node_exporter
# would). Before any event only the drill alerts fire; after a token.issued,
# token.revoked and a token.used 18 s after the revocation are ingested through
# the collector, TokentrailTokenUsedAfterRevocation fires (query
# /api/v1/alerts); TokentrailDrillFailed and TokentrailNoDrillPassed fire for
# the failing drill that never passed.
# The scrape config is dashboards/prometheus/prometheus.yml with the ports and
# intervals replaced. Every server is on 127.0.0.1 and stopped by PID.
set -u
. "$(dirname "$0")/lib.sh"
. "$TT_IDIR/dashboards/lib_dash.sh"
DASH=$TT_ROOT/dashboards
command -v prometheus >/dev/null || die "prometheus is missing (Debian package prometheus; make deps)"
python3 -c 'import yaml' 2>/dev/null || die "python3 has no yaml module (Debian package python3-yaml)"

# ---- the three targets ----
tt_start || exit 1
dash_start_analyzer "$TT_DB"

dash_build_drill_tools
dash_drill_server
mkdir -p "$TT_TMP/textfile"
dash_drill dash-fail 1 "$TT_TMP/textfile/tokentrail_drill.prom"
assert_eq "$DRILL_RC" 1 "failing drill exit status"
kill -TERM "$DRILL_SERVER_PID"; wait "$DRILL_SERVER_PID" 2>/dev/null; _tt_forget "$DRILL_SERVER_PID"

# node_exporter's textfile collector, reduced to what matters here: the .prom
# files of a directory served as /metrics.
python3 - "$TT_TMP/textfile" "$TT_TMP/nx.port" <<'PY' &
import glob, http.server, os, sys
d, portfile = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"".join(open(f, "rb").read() for f in sorted(glob.glob(os.path.join(d, "*.prom"))))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(portfile + ".tmp", "w").write(str(s.server_port)); os.rename(portfile + ".tmp", portfile)
s.serve_forever()
PY
NX_PID=$!
TT_PIDS+=("$NX_PID")
for _ in $(seq 100); do [ -s "$TT_TMP/nx.port" ] && break; sleep 0.05; done
NX_PORT=$(cat "$TT_TMP/nx.port")

# ---- Prometheus, configured from the sample config ----
PROM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$DASH/prometheus/prometheus.yml" "$TT_TMP/prometheus.yml" "$DASH/prometheus/alerts.yml" \
    "127.0.0.1:$TT_PORT" "127.0.0.1:$AN_PORT" "127.0.0.1:$NX_PORT" <<'PY'
import sys, yaml
src, dst, rules, col, an, nx = sys.argv[1:]
c = yaml.safe_load(open(src))
c["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
c["rule_files"] = [rules]
c.pop("alerting", None)          # no Alertmanager here; /api/v1/alerts is enough
targets = {"tokentrail-collector": col, "tokentrail-analyzer": an, "node": nx}
for j in c["scrape_configs"]:
    j["static_configs"] = [{"targets": [targets.pop(j["job_name"])]}]
assert not targets, "sample prometheus.yml lacks jobs %s" % targets
yaml.safe_dump(c, open(dst, "w"))
PY
[ -s "$TT_TMP/prometheus.yml" ] || die "could not derive the Prometheus config from the sample"
prometheus --config.file="$TT_TMP/prometheus.yml" --storage.tsdb.path="$TT_TMP/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$TT_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
TT_PIDS+=("$PROM_PID")
PROM=http://127.0.0.1:$PROM_PORT
for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$PROM/-/ready")" = 200 ] && break
    _tt_alive "$PROM_PID" || die "prometheus exited: $(tail -5 "$TT_TMP/prometheus.log")"
    sleep 0.1
done
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$PROM/-/ready")" 200 "prometheus ready"

query() { curl -s --max-time 5 --data-urlencode "query=$1" "$PROM/api/v1/query"; }
# alerts_json: the alerts Prometheus has now (pending and firing)
alerts_json() { curl -s --max-time 5 "$PROM/api/v1/alerts"; }

# every target scraped and up
for _ in $(seq 100); do
    [ "$(query 'count(up == 1)' | jq -r '.data.result[0].value[1] // 0')" = 3 ] && break
    sleep 0.2
done
assert_eq "$(query 'count(up == 1)' | jq -r '.data.result[0].value[1] // 0')" 3 "targets up: $(query up | jq -c '[.data.result[] | {job: .metric.job, up: .value[1]}]')"
# a few evaluations with the findings counters at 0
for _ in $(seq 50); do
    [ "$(query 'count(tokentrail_findings_total{kind="used_after_revoke"} offset 2s)' | jq -r '.data.result[0].value[1] // 0')" = 1 ] && break
    sleep 0.2
done

# ---- no tokentrail alert yet, except the failing drill's two ----
for _ in $(seq 50); do
    alerts_json | jq -e '.data.alerts[] | select(.labels.alertname == "TokentrailDrillFailed" and .state == "firing")' >/dev/null && break
    sleep 0.2
done
A=$(alerts_json)
assert_jq "$A" '[.data.alerts[] | select(.labels.alertname == "TokentrailDrillFailed" and .state == "firing" and .labels.scenario == "dash-fail")] | length == 1' \
    "TokentrailDrillFailed firing for dash-fail"
# dash-fail never passed: its last success is 0, so it also has no pass in 7 days
assert_jq "$A" '[.data.alerts[] | select(.labels.alertname == "TokentrailNoDrillPassed" and .state == "firing" and .labels.scenario == "dash-fail" and (.annotations.description | test("never passed")))] | length == 1' \
    "TokentrailNoDrillPassed firing for dash-fail (never passed)"
assert_jq "$A" '[.data.alerts[] | select(.labels.alertname | test("^Tokentrail(DrillFailed|NoDrillPassed)$") | not)] | length == 0' \
    "no other alert before any finding (down alerts included)"

# ---- a token used 18 s after its revocation, through the collector ----
ts() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
b=$(($(date +%s) - 60))
cat >"$TT_TMP/uar.ndjson" <<NDJSON
{"specversion":"1.0","id":"iss-1","source":"//as","type":"token.issued","time":"$(ts $b)","data":{"token":"tok-uar","client_id":"oncall-cli","subject":"alice","scopes":"db:orders:read","issued_at":"$(ts $b)","expires_at":"$(ts $((b + 600)))"}}
{"specversion":"1.0","id":"rev-1","source":"//as","type":"token.revoked","time":"$(ts $((b + 2)))","data":{"token":"tok-uar","reason":"incident resolved","actor":"alice"}}
{"specversion":"1.0","id":"use-1","source":"//rs/orders","type":"token.used","time":"$(ts $((b + 20)))","data":{"token":"tok-uar","resource":"orders-db","method":"GET","path":"/orders/42","status":200,"scopes":"db:orders:read"}}
NDJSON
tt_post "$TT_TMP/uar.ndjson"
assert_eq "$STATUS" 200 "POST the used-after-revoke sequence"
assert_jq "$BODY" '.accepted == 3' "all three events accepted"

t0=$SECONDS
for _ in $(seq 150); do
    alerts_json | jq -e '.data.alerts[] | select(.labels.alertname == "TokentrailTokenUsedAfterRevocation" and .state == "firing")' >/dev/null && break
    sleep 0.2
done
A=$(alerts_json)
note "alert seen after $((SECONDS - t0)) s"
assert_jq "$A" "[.data.alerts[] | select(.labels.alertname == \"TokentrailTokenUsedAfterRevocation\" and .state == \"firing\" and .labels.severity == \"critical\" and .labels.instance == \"127.0.0.1:$AN_PORT\" and .annotations.runbook_url == \"docs/runbooks/token-used-after-revocation.md\")] | length == 1" \
    "TokentrailTokenUsedAfterRevocation firing"
assert_jq "$A" '[.data.alerts[] | select(.labels.alertname | test("Down$"))] | length == 0' "no down alert"
assert_eq "$(tt_metric 'tokentrail_events_accepted_total{type="token.used"}')" 1 "collector counted the use"
f=$("$TT_CLI" findings --db "$TT_DB" --kind used_after_revoke --format json)
assert_jq "$f" '.kind == "used_after_revoke"' "the finding behind the alert"

# ---- stop everything by PID ----
kill -TERM "$PROM_PID"
tt_wait_exit "$PROM_PID" 15 || { kill -KILL "$PROM_PID"; fail "prometheus did not stop on SIGTERM"; }
_tt_forget "$PROM_PID"
kill -TERM "$NX_PID"; wait "$NX_PID" 2>/dev/null; _tt_forget "$NX_PID"
kill -TERM "$AN_PID"
tt_wait_exit "$AN_PID" 15 || { kill -KILL "$AN_PID"; fail "analyzer did not stop on SIGTERM"; }
assert_eq "$TT_WAIT_RC" 0 "analyzer exit status"
_tt_forget "$AN_PID"
tt_stop
assert_eq "$TT_RC" 0 "collector exit status"
tt_done
