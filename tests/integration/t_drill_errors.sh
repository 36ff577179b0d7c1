#!/usr/bin/env bash
# t_drill_errors.sh - the drill's error paths, against a fake authorization
# and resource server on 127.0.0.1 (Python) that misbehaves on purpose:
#  - error messages quote the server's answer but never a raw token or secret
#    (not on stdout or stderr, not in report.json, report.html or JUnit);
#    pins a bug: a 200 token answer whose JSON did not parse was quoted, token
#    included, in all four places, and an echoed Basic header leaked the
#    client secret;
#  - a token response the drill cannot use is an error that says why;
#  - an errored or interrupted run is an error in every output (it was
#    "pass" in report.json, the HTML and JUnit, exit status 2 only);
#  - a server that refuses the fresh token is not probed (a 0 ms
#    "propagation" was recorded for it);
#  - a drill that cannot start still updates its --textfile (it kept the
#    last run's passed=1).
# The server answers:
#   POST /token-bad   200, truncated JSON holding RAWDRILLTOKEN-123
#   POST /token       200, a good token response: RAWGOODTOKEN-456
#   POST /token-echo  400, echoing the Authorization header (client id and
#                     secret, base64'd: client_secret_basic)
#   POST /token-mac   200, the same with token_type MAC (not usable as Bearer)
#   POST /token-soon  200, the same with expires_in "soon"
#   POST /revoke      500, echoing the token it was sent, without its name
#   POST /revoke-ok   200
#   GET  /rs          200 (accepts any token, never refuses)
#   GET  /rs-refuse   401 (refuses every token)
set -u
. "$(dirname "$0")/lib.sh"

dir=$TT_TMP/redact
mkdir -p "$dir"
python3 - "$dir/port" <<'PY' >"$dir/server.log" 2>&1 &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, ctype="application/json"):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(n).decode())
        if self.path == "/token-bad":
            self.reply(200, '{"access_token":"RAWDRILLTOKEN-123","token_type":"Bearer"')
        elif self.path == "/token-echo":
            self.reply(400, '{"error":"invalid_client","raw":"%s"}'
                       % self.headers.get("Authorization", ""))
        elif self.path == "/token-mac":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"MAC"}')
        elif self.path == "/token-soon":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"bearer",'
                            '"expires_in":"soon"}')
        elif self.path == "/token":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"Bearer",'
                            '"expires_in":300,"scope":"a"}')
        elif self.path == "/revoke-ok":
            self.reply(200, "{}")
        elif self.path == "/revoke":
            self.reply(500, "could not revoke %s today" % form.get("token", ["?"])[0],
                       "text/plain")
        else:
            self.reply(404, "{}")

    def do_GET(self):
        self.reply({"/rs": 200, "/rs-refuse": 401}.get(self.path, 404), "{}")

    def log_message(self, *a):
        pass

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
PY
srv_pid=$!
TT_PIDS+=("$srv_pid")
echo "$srv_pid" >>"$TT_TMP/pids"
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
assert_eq "$( [ -s "$dir/port" ] && echo yes)" yes "fake authorization server listening"
port=$(cat "$dir/port")
echo "client-secret-not-for-logs" >"$dir/secret"
basic_b64=$(printf 'svc:client-secret-not-for-logs' | base64 -w0)

scenario() { # NAME TOKEN_PATH [THRESHOLDS [REVOKE_PATH [LOAD]]]
    cat >"$dir/$1.yaml" <<YAML
name: $1
authorization_server:
  token_endpoint: http://127.0.0.1:$port$2
  revocation_endpoint: http://127.0.0.1:$port${4:-/revoke}
client:
  client_id: svc
  client_secret_file: $dir/secret
grant:
  scope: a
resource_servers:
  - name: rs
    url: http://127.0.0.1:$port/rs
end: revoke
load:
  probe_timeout: 2s
${5:-}
${3:-}
YAML
}

# check NAME EXPECTED_EXIT WHAT_THE_ERROR_SAYS: run, then look for secrets
check() {
    local name=$1
    "$TT_BIN" drill run -q "$dir/$name.yaml" --out "$dir/out-$name" --junit "$dir/$name.junit.xml" \
        >"$dir/$name.stdout" 2>"$dir/$name.stderr"
    local rc=$?
    sed "s/^/    # $name: /" "$dir/$name.stdout" "$dir/$name.stderr"
    assert_eq "$rc" "$2" "$name: exit status"
    local all
    all=$(cat "$dir/$name.stdout" "$dir/$name.stderr" "$dir/$name.junit.xml" \
        "$dir/out-$name"/* 2>/dev/null)
    assert_contains "$all" "$3" "$name: the error quotes the answer, redacted"
    assert_not_contains "$all" "RAWDRILLTOKEN" "$name: no raw token from the bad answer"
    assert_not_contains "$all" "RAWGOODTOKEN" "$name: no raw issued token"
    assert_not_contains "$all" "client-secret-not-for-logs" "$name: no client secret"
    assert_not_contains "$all" "$basic_b64" "$name: no client secret, base64'd"
    assert_not_contains "$all" "${basic_b64:0:24}" "$name: not even the start of it"
}

scenario bad-json /token-bad
check bad-json 2 '"access_token":"<redacted>","token_type":"Bearer"'
# no `errors` threshold: the run is an error (exit 2), and says so
assert_contains "$(cat "$dir/bad-json.stdout")" "): ERROR - 0 of 0 thresholds passed" \
    "bad-json: summary verdict"
assert_eq "$(ls "$dir/out-bad-json/report.json" 2>/dev/null)" "$dir/out-bad-json/report.json" \
    "bad-json: report.json written"

scenario basic-echo /token-echo
check basic-echo 2 '"raw":"Basic <redacted>"'

# token responses the drill cannot use: a precise reason, exit 2
scenario mac /token-mac
check mac 2 '(token_type is not Bearer: the drill sends tokens as Bearer tokens (RFC 6750))'
scenario soon /token-soon
check soon 2 '(expires_in is not a number of seconds)'

scenario echo /token $'thresholds:\n  errors: ["count == 0"]'
check echo 1 'HTTP 500: could not revoke <redacted> today'
assert_jq "$(cat "$dir/out-echo/report.json")" '.iterations[0].error | test("revocation")' \
    "echo: the iteration's error names the revocation"
# ---- a server that refuses the fresh token: counted, not probed
cat >"$dir/refuse.yaml" <<YAML
name: refuse
authorization_server:
  token_endpoint: http://127.0.0.1:$port/token
  revocation_endpoint: http://127.0.0.1:$port/revoke-ok
client:
  client_id: svc
  client_secret_file: $dir/secret
resource_servers:
  - name: refuser
    url: http://127.0.0.1:$port/rs-refuse
thresholds:
  fresh_token_refused: ["count == 0"]
  revocation_propagation_ms: ["max < 1000"]
YAML
"$TT_BIN" drill run -q "$dir/refuse.yaml" --out "$dir/out-refuse" >"$dir/refuse.stdout" 2>&1
assert_eq "$?" 1 "refuse: exit status (fresh_token_refused fails)"
rep=$(cat "$dir/out-refuse/report.json")
assert_jq "$rep" '.metrics["fresh_token_refused{refuser}"].count == 1' "refuse: counted"
assert_jq "$rep" '.metrics["revocation_propagation_ms{refuser}"].count == 0' \
    "refuse: no propagation sample for a server that never accepted"
assert_jq "$rep" '.iterations[0].resource_servers.refuser | .probed == false and .probes == 0' \
    "refuse: not probed"
assert_jq "$rep" '.thresholds[1] | .name == "revocation_propagation_ms max < 1000" and .pass == false' \
    "refuse: the propagation threshold has no samples to pass on"

# ---- interrupted: SIGINT while the servers still accept the revoked token
scenario interrupted /token "" /revoke-ok $'  engineers: 2\n  iterations: 3\n  probe_timeout: 30s'
sed -i 's/^  probe_timeout: 2s$//' "$dir/interrupted.yaml"
"$TT_BIN" drill run -q "$dir/interrupted.yaml" --out "$dir/out-int" --junit "$dir/int.junit.xml" \
    >"$dir/int.stdout" 2>"$dir/int.stderr" &
drill_pid=$!
TT_PIDS+=("$drill_pid")
sleep 1.5
kill -INT "$drill_pid"
if tt_wait_exit "$drill_pid" 10; then rc=$TT_WAIT_RC; else kill -KILL "$drill_pid"; rc=timeout; fi
_tt_forget "$drill_pid"
sed 's/^/    # interrupted: /' "$dir/int.stdout" "$dir/int.stderr"
assert_eq "$rc" 2 "interrupted: exit status"
rep=$(cat "$dir/out-int/report.json")
assert_jq "$rep" '.result == "error" and .interrupted == true' "interrupted: result"
assert_jq "$rep" '.error | startswith("interrupted by a signal: 2 of 6 iterations started")' \
    "interrupted: why"
assert_jq "$rep" '([.iterations[] | select(.engineer == 0)] | length) == 0 and (.iterations | length) == 2' \
    "interrupted: only the iterations that started"
assert_contains "$(cat "$dir/int.junit.xml")" 'errors="1"' "interrupted: JUnit error count"
assert_contains "$(cat "$dir/int.junit.xml")" '<error type="interrupted"' "interrupted: JUnit error"
assert_contains "$(cat "$dir/out-int/report.html")" '>ERROR</span>' "interrupted: HTML badge"
assert_contains "$(cat "$dir/int.stdout")" "): ERROR - " "interrupted: summary"

# ---- a drill that cannot start still says so in its textfile
scenario tf /token "" /revoke-ok
"$TT_BIN" drill run -q "$dir/tf.yaml" --out "$dir/out-tf1" --textfile "$dir/drill.prom" >/dev/null 2>&1
assert_eq "$?" 0 "textfile: first run passes"
assert_contains "$(cat "$dir/drill.prom")" 'tokentrail_drill_passed{scenario="tf"} 1' "textfile: passed"
sed -i "s|token_endpoint: http://127.0.0.1:$port/token|token_endpoint: http://127.0.0.1:9/token|; s|^name: tf|name: tf|" "$dir/tf.yaml"
sed -i "s|url: http://127.0.0.1:$port/rs|url: http://127.0.0.1:9/rs|" "$dir/tf.yaml"
# cannot start: discovery from an issuer nothing answers for (a missing
# revocation_endpoint without an issuer is refused when the scenario loads)
sed -i "s|^authorization_server:\$|authorization_server:\\n  issuer: http://127.0.0.1:9|" "$dir/tf.yaml"
"$TT_BIN" drill run -q "$dir/tf.yaml" --out "$dir/out-tf2" --textfile "$dir/drill.prom" \
    >"$dir/tf2.out" 2>&1
rc=$?
sed 's/^/    # textfile: /' "$dir/tf2.out"
assert_eq "$rc" 2 "textfile: the second run cannot start"
assert_contains "$(cat "$dir/drill.prom")" 'tokentrail_drill_passed{scenario="tf"} 0' \
    "textfile: passed 0 after a run that could not start"
tt_done
