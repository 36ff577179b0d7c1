#!/usr/bin/env bash
# t_analyze_follow.sh - the analyzer following a live collector: findings
# appear as events arrive, /metrics counts them, SIGTERM checkpoints and a
# restart mid-stream continues without repeating or missing a finding (the
# final set equals a fresh --once over the same events), and new findings
# are pushed to an Alertmanager-compatible receiver with de-duplicating labels.
set -u
. "$(dirname "$0")/lib.sh"
A=$TT_IDIR/analyze
POLICY=$A/policy.yaml

# A receiver for POST /api/v2/alerts that stores each body as a file.
mkdir -p "$TT_TMP/alerts"
python3 - "$TT_TMP/alerts" "$TT_TMP/am.port" <<'PY' &
import http.server, os, sys
out, portfile = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n = len(os.listdir(out))
        with open(os.path.join(out, "%03d-%s.json" % (n, self.path.strip("/").replace("/", "_"))), "wb") as f:
            f.write(body)
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(portfile + ".tmp", "w").write(str(s.server_port)); os.rename(portfile + ".tmp", portfile)
s.serve_forever()
PY
am_pid=$!
TT_PIDS+=("$am_pid")
for _ in $(seq 100); do [ -s "$TT_TMP/am.port" ] && break; sleep 0.05; done
AM_URL=http://127.0.0.1:$(cat "$TT_TMP/am.port")

tt_start || exit 1

# Events a minute old: behind the 2 s lateness at once; expiry and idleness
# are far ahead, so only event-driven findings are due.
ts() { date -u -d "@$(($1))" +%Y-%m-%dT%H:%M:%SZ; }
base=$(($(date +%s) - 60))
ev() { # id type time token data-extra
    printf '{"specversion":"1.0","id":"%s","source":"//t","type":"%s","time":"%s","data":{"token":"%s"%s}}\n' "$1" "$2" "$(ts "$3")" "$4" "$5"
}
issued() { # id time token client scopes
    ev "$1" token.issued "$2" "$3" ",\"client_id\":\"$4\",\"subject\":\"s-$1\",\"scopes\":\"$5\",\"issued_at\":\"$(ts "$2")\",\"expires_at\":\"$(ts $(($2 + 600)))\""
}
used() { ev "$1" token.used "$2" "$3" ",\"resource\":\"orders-db\",\"scopes\":\"$4\""; }
{
    issued ia $((base)) tok-a oncall-cli "db:orders:read db:orders:write"
    used ua1 $((base + 1)) tok-a "db:orders:read db:orders:write"
    ev ra token.revoked $((base + 2)) tok-a ""
    issued ib $((base + 3)) tok-b stranger-cli "db:orders:read"
} >"$TT_TMP/part1.ndjson"
{
    used ua2 $((base + 20)) tok-a "db:orders:read"
    issued ic $((base + 21)) tok-c oncall-cli "db:orders:read zz:unknown"
    used ub1 $((base + 22)) tok-b "db:orders:read"
    used uc1 $((base + 23)) tok-c "db:orders:read zz:unknown"
} >"$TT_TMP/part2.ndjson"

start_analyzer() {
    rm -f "$TT_TMP/an.port"
    "$TT_CLI" analyze --db "$TT_DB" --policy "$POLICY" --lateness 2s --format json \
        --listen 127.0.0.1:0 --port-file "$TT_TMP/an.port" --alertmanager "$AM_URL" \
        >"$TT_TMP/an.$1.out" 2>"$TT_TMP/an.$1.err" &
    AN_PID=$!
    TT_PIDS+=("$AN_PID")
    echo "$AN_PID" >>"$TT_TMP/pids"
    for _ in $(seq 200); do [ -s "$TT_TMP/an.port" ] && break; sleep 0.05; done
    [ -s "$TT_TMP/an.port" ] || die "analyzer did not start: $(cat "$TT_TMP/an.$1.err")"
    AN_URL=http://127.0.0.1:$(cat "$TT_TMP/an.port")
}
metric() { curl -s --max-time 5 "$AN_URL/metrics" | awk -v k="$1" '$1 == k { print $2; f=1 } END { if (!f) print "absent" }'; }
wait_findings() { # file count
    for _ in $(seq 200); do [ "$(grep -c . "$1")" -ge "$2" ] && return 0; sleep 0.05; done
    return 1
}

start_analyzer 1
tt_post "$TT_TMP/part1.ndjson"
assert_eq "$STATUS" 200 "POST part 1"
wait_findings "$TT_TMP/an.1.out" 2 || fail "part 1 findings did not appear: $(cat "$TT_TMP/an.1.err")"
assert_eq "$(jq -r .kind "$TT_TMP/an.1.out" | sort | tr '\n' ' ')" "new_scope_for_client scope_outside_baseline " "findings of part 1"
assert_eq "$(metric 'tokentrail_findings_total{kind="scope_outside_baseline",severity="high"}')" 1 "findings_total after part 1"
assert_eq "$(metric 'tokentrail_analyzer_events_total{outcome="processed"}')" 4 "events processed after part 1"
assert_eq "$(metric 'tokentrail_build_info{version="'"$(cat "$TT_ROOT/VERSION")"'",component="analyzer"}')" 1 "build_info"
assert_eq "$(metric 'tokentrail_tokens_lingering{kind="outlived_incident"}')" 0 "lingering gauge"
assert_ne "$(metric tokentrail_analyzer_watermark_seconds)" absent "watermark gauge"
tt_stop "$AN_PID"
assert_eq "$TT_RC" 0 "analyzer exit status after SIGTERM"
assert_contains "$(cat "$TT_TMP/an.1.err")" "checkpoint committed" "shutdown log"

# Restart mid-stream: part 2 arrives while the analyzer is down.
tt_post "$TT_TMP/part2.ndjson"
assert_eq "$STATUS" 200 "POST part 2"
start_analyzer 2
wait_findings "$TT_TMP/an.2.out" 3 || fail "part 2 findings did not appear: $(cat "$TT_TMP/an.2.err")"
sleep 0.5
assert_eq "$(jq -r .kind "$TT_TMP/an.2.out" | sort | tr '\n' ' ')" "new_scope_for_client unknown_scope used_after_revoke " "findings after the restart (none repeated)"
assert_contains "$(cat "$TT_TMP/an.2.err")" "continuing after seq:4" "restart log"
assert_eq "$(metric 'tokentrail_findings_total{kind="used_after_revoke",severity="critical"}')" 1 "used_after_revoke counted"
assert_eq "$(metric 'tokentrail_findings_total{kind="scope_outside_baseline",severity="high"}')" 0 "nothing re-counted after the restart"
assert_eq "$(metric 'tokentrail_analyzer_events_total{outcome="processed"}')" 4 "events processed by the second run"
assert_eq "$(metric tokentrail_analyzer_source_lag_events)" 0 "source lag"
tt_stop "$AN_PID"
assert_eq "$TT_RC" 0 "second analyzer exit status"

stored=$("$TT_CLI" findings --db "$TT_DB" --format json)
assert_eq "$(printf '%s\n' "$stored" | grep -c .)" 5 "stored findings"
assert_eq "$(printf '%s\n' "$stored" | jq -r .id | sort -u | grep -c .)" 5 "distinct stored ids"

# The same events analysed in one go give the same findings (same ids).
tt_stop
cp "$TT_DB" "$TT_TMP/fresh.db"
sqlite3 "$TT_TMP/fresh.db" "DROP TABLE findings; DROP TABLE analyzer_state; DROP TABLE analyzer_tokens;
    DROP TABLE analyzer_incidents; DROP TABLE analyzer_client_scopes; DROP TABLE analyzer_pending;"
once=$("$TT_CLI" analyze --db "$TT_TMP/fresh.db" --policy "$POLICY" --once --as-of "$(ts $((base + 60)))" --format json 2>/dev/null)
assert_eq "$?" 3 "--once exit status on the same events"
assert_eq "$(printf '%s\n' "$once" | jq -r .id | sort | tr '\n' ' ')" "$(printf '%s\n' "$stored" | jq -r .id | sort | tr '\n' ' ')" "follow-with-restart ids equal --once ids"

# Alerts: every finding pushed once, with labels Alertmanager de-duplicates on.
alerts=$(cat "$TT_TMP/alerts"/*api_v2_alerts.json | jq -c '.[]')
assert_eq "$(printf '%s\n' "$alerts" | grep -c .)" 5 "alerts received"
assert_eq "$(printf '%s\n' "$alerts" | jq -r .labels.finding_id | sort | tr '\n' ' ')" "$(printf '%s\n' "$stored" | jq -r .id | sort | tr '\n' ' ')" "alert finding_id labels"
uar=$(printf '%s\n' "$alerts" | jq -c 'select(.labels.finding_kind == "used_after_revoke")')
assert_jq "$uar" '.labels.alertname == "TokentrailFinding" and .labels.severity == "critical" and (.labels.token_id | startswith("sha256:")) and .labels.client_id == "oncall-cli"' "used_after_revoke alert labels"
assert_jq "$uar" '(.annotations.summary | test("used .* after it was revoked")) and (.startsAt | endswith("Z"))' "used_after_revoke alert annotations"
kill "$am_pid" 2>/dev/null
tt_done
