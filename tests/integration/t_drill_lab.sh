#!/usr/bin/env bash
# t_drill_lab.sh - `tokentrail drill run` against the real lab (oidc-provider +
# Apache mod_oauth2) with a collector: the revocation drill must PASS on
# rs-nocache and FAIL on rs-cache5 with a lingering time near its 5 s cache,
# the JUnit file and report.json must say exactly that, the drill's and the
# lab's events must reach the collector, and a device_code drill must pass.
set -u
. "$(dirname "$0")/lib.sh"

LAB_SH=$TT_ROOT/tests/lab/lab.sh
# Apache's children (www-data) must traverse the lab directory, and run.sh's
# scratch directory is 0700: the lab gets its own world-traversable one.
LAB=$(mktemp -d /tmp/tt-drill-lab.XXXXXX)
chmod 0755 "$LAB"
# A skipped lab must not read as a pass: without root there is no lab.
[ "$(id -u)" = 0 ] || die "the lab's Apache needs root (run the tests as root, as CI does)"
"$LAB_SH" deps >"$TT_TMP/lab-deps.log" 2>&1 || die "lab.sh deps failed: $(tail -3 "$TT_TMP/lab-deps.log")"

# Stop the lab by PID whatever happens, then the collectors (lib.sh).
trap '_rc=$?; "$LAB_SH" stop "$LAB" >/dev/null 2>&1; cp -r "$LAB/logs" "$TT_TMP/lab-logs" 2>/dev/null; rm -rf "$LAB"; (exit $_rc); _tt_cleanup' EXIT

tt_start || die "collector did not start"
export TT_COLLECTOR_URL=$TT_URL/v1/events
LAB_COLLECTOR_URL=$TT_COLLECTOR_URL "$LAB_SH" start "$LAB" >"$TT_TMP/lab-start.log" 2>&1 ||
    die "lab.sh start failed: $(tail -5 "$TT_TMP/lab-start.log")"
set -a
. "$LAB/lab.env"
set +a
SC=$TT_ROOT/drills/scenarios

# ---- 1. revocation drill: nocache passes, cache5 lingers and fails ----
OUT=$TT_TMP/revoke
"$TT_BIN" drill run -q "$SC/lab-revoke.yaml" --out "$OUT" --junit "$TT_TMP/revoke-junit.xml" \
    >"$TT_TMP/revoke.out" 2>"$TT_TMP/revoke.err"
rc=$?
cat "$TT_TMP/revoke.out"
assert_eq "$rc" 1 "drill exit status (1 = a threshold failed); stderr: $(head -c 300 "$TT_TMP/revoke.err")"
REPORT=$(cat "$OUT/report.json" 2>/dev/null)
assert_jq "$REPORT" '.result == "fail" and .iterations_with_errors == 0' "report result"
assert_jq "$REPORT" '[.thresholds[] | select(.pass | not) | .name] == ["revocation_propagation_ms{rs-cache5} max < 1000"]' \
    "exactly the rs-cache5 threshold fails"
assert_jq "$REPORT" '.thresholds[] | select(.name == "revocation_propagation_ms{rs-nocache} max < 1000") | .pass and .value < 250' \
    "rs-nocache propagation well under 1 s"
assert_jq "$REPORT" '.thresholds[] | select(.name == "revocation_propagation_ms{rs-cache5} max < 1000") | .value >= 3500 and .value <= 6000' \
    "rs-cache5 lingers about its 5 s cache"
assert_jq "$REPORT" '[.iterations[].resource_servers["rs-cache5"] | .refused_ms != null and .last_accept_ms != null] | all' \
    "rs-cache5 accepted probes after the revocation, then refused"
assert_jq "$REPORT" '[.iterations[] | .active_after_end == false and .scope_widened == false and (.token_id | startswith("sha256:"))] | all' \
    "introspection inactive after the end, no widening, fingerprints only"
JUNIT=$(cat "$TT_TMP/revoke-junit.xml" 2>/dev/null)
assert_contains "$JUNIT" 'tests="9" failures="1"' "junit counts"
assert_contains "$JUNIT" '<testcase classname="drill.lab-revoke" name="revocation_propagation_ms{rs-cache5} max &lt; 1000" time="0">' "junit failing case"
assert_contains "$JUNIT" '<failure type="threshold" message="max = ' "junit failure message"
assert_contains "$JUNIT" '<testcase classname="drill.lab-revoke" name="revocation_propagation_ms{rs-nocache} max &lt; 1000" time="0"/>' "junit rs-nocache passes"
cmp -s "$TT_TMP/revoke-junit.xml" "$OUT/junit.xml"
assert_eq "$?" 0 "--junit file equals OUT/junit.xml"
assert_contains "$(cat "$OUT/report.html" 2>/dev/null)" "<svg" "report.html has charts"

# ---- 2. the drill's events are in the collector, tagged with the run ----
RUN=$(printf '%s' "$REPORT" | jq -r .run_id)
EV=$(tt_events | jq -c --arg r "$RUN" 'select(.drillrun == $r)')
count() { printf '%s\n' "$EV" | jq -s --arg t "$1" '[.[] | select(.type == $t)] | length'; }
assert_eq "$(count incident.opened)" 4 "incident.opened events of the run"
assert_eq "$(count token.issued)" 4 "token.issued events of the run"
assert_eq "$(count token.used)" 12 "token.used events of the run"
assert_eq "$(count token.revoked)" 4 "token.revoked events of the run"
TOK=$(printf '%s' "$REPORT" | jq -r '.iterations[0].token_id')
assert_eq "$(printf '%s\n' "$EV" | jq -s --arg t "$TOK" '[.[] | select(.data.token_id == $t)] | length')" 5 \
    "one token's issued + 3 used + revoked events"
assert_not_contains "$(tt_events)" '"token":' "no raw token stored"

# ---- 3. the lab's own events (forwarder) name the same token ----
for _ in $(seq 1 50); do
    LABEV=$(tt_events --token "$TOK" | jq -c 'select(.source | startswith("//tokentrail/lab/"))')
    [ "$(printf '%s\n' "$LABEV" | grep -c 'token.revoked')" -ge 1 ] && break
    sleep 0.1
done
assert_jq "$(printf '%s\n' "$LABEV" | jq -s -c .)" '[.[] | select(.type == "token.issued")] | length == 1' \
    "the AS's token.issued for the drill token was forwarded"
assert_jq "$(printf '%s\n' "$LABEV" | jq -s -c .)" '[.[] | select(.type == "token.used") | .data.resource] | unique == ["rs-cache1", "rs-cache5", "rs-nocache"]' \
    "every RS's token.used for the drill token was forwarded"
assert_jq "$(printf '%s\n' "$LABEV" | jq -s -c .)" '[.[] | select(.type == "token.revoked")] | length == 1' \
    "the AS's token.revoked was forwarded"

# ---- 4. a device_code drill passes ----
"$TT_BIN" drill run -q "$SC/lab-device.yaml" --out "$TT_TMP/device" >"$TT_TMP/device.out" 2>&1
rc=$?
cat "$TT_TMP/device.out"
assert_eq "$rc" 0 "device_code drill exit status"
assert_jq "$(cat "$TT_TMP/device/report.json")" '.result == "pass" and .scenario.grant == "device_code" and ([.iterations[] | .token_id != null] | all)' \
    "device drill report"

# ---- 4b. an RFC 8693 token-exchange drill passes, without widening ----
"$TT_BIN" drill run -q "$SC/lab-exchange.yaml" --out "$TT_TMP/exchange" >"$TT_TMP/exchange.out" 2>&1
rc=$?
cat "$TT_TMP/exchange.out"
assert_eq "$rc" 0 "token_exchange drill exit status"
assert_jq "$(cat "$TT_TMP/exchange/report.json")" '.result == "pass" and .scenario.grant == "token_exchange" and ([.iterations[] | .granted_scope == "db:orders:read" and .scope_widened == false] | all)' \
    "exchange drill report: narrowed scope, not widened"

# ---- 5. errors name the step and the endpoint; exit 2 ----
"$TT_BIN" drill run -q "$TT_IDIR/drill/bad-secret.yaml" --out "$TT_TMP/bad" >"$TT_TMP/bad.out" 2>&1
rc=$?
assert_eq "$rc" 2 "wrong client secret: exit 2"
assert_contains "$(cat "$TT_TMP/bad.out")" "token request: $AS_URL/token: HTTP 401" "error names step, endpoint and status"
"$TT_BIN" drill run -q "$TT_IDIR/drill/inline-secret.yaml" >"$TT_TMP/inline.out" 2>&1
rc=$?
assert_eq "$rc" 2 "inline secret: exit 2"
assert_contains "$(cat "$TT_TMP/inline.out")" "inline-secret.yaml:7: client_secret: inline secrets are not allowed" "inline secret rejected with file:line"

# ---- 6. access that ends by expiry: a lab with 3 s tokens ----
"$LAB_SH" stop "$LAB" >/dev/null 2>&1
LAB_ACCESS_TTL=3 "$LAB_SH" start "$LAB" >"$TT_TMP/lab-start-ttl.log" 2>&1 ||
    die "lab.sh start (TTL 3 s) failed: $(tail -5 "$TT_TMP/lab-start-ttl.log")"
set -a
. "$LAB/lab.env"
set +a
"$TT_BIN" drill run -q "$SC/lab-expire.yaml" --out "$TT_TMP/expire" >"$TT_TMP/expire.out" 2>&1
rc=$?
cat "$TT_TMP/expire.out"
assert_eq "$rc" 0 "expire drill exit status"
# The end of access is the token's expiry, about 3 s after it arrived, and
# every server refused from then on.
assert_jq "$(cat "$TT_TMP/expire/report.json")" '.result == "pass" and ([.iterations[] | (.end_ms - .token_ms) >= 2900 and (.end_ms - .token_ms) <= 3500] | all) and ([.iterations[].resource_servers[] | .lingering == false and .refused_ms >= 0] | all)' \
    "expire drill: access ended at exp (~3 s after issue) and every server refused"

"$LAB_SH" stop "$LAB" >/dev/null 2>&1
tt_done
