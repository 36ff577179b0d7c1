#!/usr/bin/env bash
# t_analyze_alertmanager.sh - findings pushed to a real Alertmanager (Debian's
# prometheus-alertmanager): it accepts them, shows each with its labels, and a
# second push of the same findings does not add alerts (de-duplication).
set -u
. "$(dirname "$0")/lib.sh"
A=$TT_IDIR/analyze
AM=$(command -v prometheus-alertmanager || command -v alertmanager)
if [ -z "$AM" ]; then
    note "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager); skipped"
    pass
    tt_done
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TT_TMP/am.yml" <<'YML'
route: {receiver: blackhole, group_wait: 1h}
receivers: [{name: blackhole}]
YML
"$AM" --config.file="$TT_TMP/am.yml" --storage.path="$TT_TMP/am-data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
    >"$TT_TMP/am.log" 2>&1 &
am_pid=$!
TT_PIDS+=("$am_pid")
AM_URL=http://127.0.0.1:$port
for _ in $(seq 200); do
    curl -sf --max-time 1 "$AM_URL/-/ready" >/dev/null && break
    sleep 0.05
done
curl -sf --max-time 2 "$AM_URL/-/ready" >/dev/null || die "alertmanager did not start: $(tail -5 "$TT_TMP/am.log")"

tt_start || exit 1
tt_post "$A/stream.ndjson"
assert_eq "$STATUS" 200 "POST of the stream"
"$TT_CLI" analyze --db "$TT_DB" --policy "$A/policy.yaml" --once --as-of 2026-11-20T12:00:00Z \
    --format json --alertmanager "$AM_URL" >"$TT_TMP/out" 2>"$TT_TMP/err"
assert_eq "$?" 3 "analyze exit status"
assert_not_contains "$(cat "$TT_TMP/err")" " warn " "no push error logged"

alerts=$(curl -s --max-time 5 "$AM_URL/api/v2/alerts")
assert_eq "$(printf '%s' "$alerts" | jq 'length')" 10 "alerts in Alertmanager"
assert_eq "$(printf '%s' "$alerts" | jq -r '.[].labels.finding_id' | sort | tr '\n' ' ')" \
    "$(jq -r .id "$TT_TMP/out" | sort | tr '\n' ' ')" "finding_id labels"
assert_jq "$alerts" '[.[] | select(.labels.finding_kind == "used_after_revoke")][0] | .labels.alertname == "TokentrailFinding" and .labels.severity == "critical" and .labels.subject == "alice" and .status.state == "active"' "used_after_revoke alert"

# The same findings again (as after a lost checkpoint): still 10 alerts.
"$TT_CLI" findings --db "$TT_DB" --format json >"$TT_TMP/all"
python3 - "$TT_TMP/all" "$AM_URL" <<'PY'
import json, sys, urllib.request
rows = [json.loads(l) for l in open(sys.argv[1])]
body = [{"labels": {k: v for k, v in {"alertname": "TokentrailFinding", "finding_id": r["id"],
         "finding_kind": r["kind"], "severity": r["severity"], "token_id": r["token_id"],
         "client_id": r["client_id"], "subject": r["subject"], "incident_id": r["incident_id"]}.items() if v},
         "annotations": {"summary": r["message"]}, "startsAt": r["time"]} for r in rows]
req = urllib.request.Request(sys.argv[2] + "/api/v2/alerts", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5)
PY
assert_eq "$(curl -s --max-time 5 "$AM_URL/api/v2/alerts" | jq 'length')" 10 "alerts after a repeated push"
tt_done
