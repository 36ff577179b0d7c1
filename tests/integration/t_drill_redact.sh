#!/usr/bin/env bash
# t_drill_redact.sh - a drill's error messages quote the server's answer, but
# never a raw token or secret: not on stdout or stderr, not in report.json,
# report.html or the JUnit file. And a token response the drill cannot use is
# an error that says why.
#
# Pins a bug: a token endpoint answering 200 with a token in JSON that does not
# parse (here: truncated) made the drill quote the body, token included, in
# all four places. A fake authorization server on 127.0.0.1 (Python) answers:
#   POST /token-bad   200, truncated JSON holding RAWDRILLTOKEN-123
#   POST /token       200, a good token response: RAWGOODTOKEN-456
#   POST /token-mac   200, the same with token_type MAC (not usable as Bearer)
#   POST /token-soon  200, the same with expires_in "soon"
#   POST /revoke      500, echoing the token it was sent, without its name
#   GET  /rs          200 (accepts any token)
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
        elif self.path == "/token-mac":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"MAC"}')
        elif self.path == "/token-soon":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"bearer",'
                            '"expires_in":"soon"}')
        elif self.path == "/token":
            self.reply(200, '{"access_token":"RAWGOODTOKEN-456","token_type":"Bearer",'
                            '"expires_in":300,"scope":"a"}')
        elif self.path == "/revoke":
            self.reply(500, "could not revoke %s today" % form.get("token", ["?"])[0],
                       "text/plain")
        else:
            self.reply(404, "{}")

    def do_GET(self):
        self.reply(200 if self.path == "/rs" else 404, "{}")

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

scenario() { # NAME TOKEN_PATH [THRESHOLDS]
    cat >"$dir/$1.yaml" <<YAML
name: $1
authorization_server:
  token_endpoint: http://127.0.0.1:$port$2
  revocation_endpoint: http://127.0.0.1:$port/revoke
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
}

scenario bad-json /token-bad
check bad-json 2 '"access_token":"<redacted>","token_type":"Bearer"'
# no `errors` threshold: the run is an error (exit 2), and says so
assert_contains "$(cat "$dir/bad-json.stdout")" "): ERROR - 0 of 0 thresholds passed" \
    "bad-json: summary verdict"
assert_eq "$(ls "$dir/out-bad-json/report.json" 2>/dev/null)" "$dir/out-bad-json/report.json" \
    "bad-json: report.json written"

# token responses the drill cannot use: a precise reason, exit 2
scenario mac /token-mac
check mac 2 '(token_type is not Bearer: the drill sends tokens as Bearer tokens (RFC 6750))'
scenario soon /token-soon
check soon 2 '(expires_in is not a number of seconds)'

scenario echo /token $'thresholds:\n  errors: ["count == 0"]'
check echo 1 'HTTP 500: could not revoke <redacted> today'
assert_jq "$(cat "$dir/out-echo/report.json")" '.iterations[0].error | test("revocation")' \
    "echo: the iteration's error names the revocation"
tt_done
