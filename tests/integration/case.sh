#!/usr/bin/env bash
# case.sh DIR - run one data-file case against a fresh collector: send DIR's
# request, compare status, response and stored events with DIR's expect.*
# files. The format is described in README.md; run.sh calls this per case.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] && [ -d "$1" ] || die "usage: case.sh CASE_DIR"
CASE_DIR=$(cd "$1" && pwd)
export CASE_DIR
[ -f "$CASE_DIR/expect.status" ] || die "$CASE_DIR: no expect.status"
[ -f "$CASE_DIR/expect.json" ] || die "$CASE_DIR: no expect.json"

# collect.args is shell words, so it may say "$CASE_DIR/tokens".
args=()
if [ -f "$CASE_DIR/collect.args" ]; then
    eval "args=($(grep -v '^#' "$CASE_DIR/collect.args"))"
fi
tt_start "${args[@]}" || exit 1

method=POST
[ -f "$CASE_DIR/method" ] && method=$(tr -d ' \n' <"$CASE_DIR/method")
path=/v1/events
[ -f "$CASE_DIR/path" ] && path=$(tr -d ' \n' <"$CASE_DIR/path")

# The body: request as is, or what request.sh prints; then maybe gzip it.
req=$TT_TMP/request
have_body=1
if [ -f "$CASE_DIR/request" ]; then
    cp "$CASE_DIR/request" "$req"
elif [ -f "$CASE_DIR/request.sh" ]; then
    (cd "$CASE_DIR" && bash ./request.sh) >"$req" || die "request.sh failed"
else
    have_body=0
fi
if [ -f "$CASE_DIR/gzip" ]; then
    gzip -c -n "$req" >"$req.gz" && mv "$req.gz" "$req"
fi

hdrs=()
if [ -f "$CASE_DIR/headers" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        [ -n "$line" ] && hdrs+=(-H "$line")
    done <"$CASE_DIR/headers"
else
    hdrs+=(-H 'Content-Type: application/x-ndjson')
fi
if [ -f "$CASE_DIR/gzip" ] && ! grep -qi '^content-encoding:' "$CASE_DIR/headers" 2>/dev/null; then
    hdrs+=(-H 'Content-Encoding: gzip')
fi

data=()
[ "$have_body" -eq 1 ] && data=(--data-binary "@$req")
STATUS=$(curl -s --max-time 60 -D "$TT_TMP/response.headers" -o "$TT_TMP/response.body" \
    -w '%{http_code}' -X "$method" "${hdrs[@]}" "${data[@]}" "$TT_URL$path")
BODY=$(cat "$TT_TMP/response.body" 2>/dev/null)
HEADERS=$(tr -d '\r' <"$TT_TMP/response.headers" 2>/dev/null)
export STATUS BODY HEADERS

assert_eq "$STATUS" "$(tr -d ' \n' <"$CASE_DIR/expect.status")" "HTTP status"
assert_json_eq "$BODY" "$(cat "$CASE_DIR/expect.json")" "response body"

if [ -f "$CASE_DIR/expect.headers" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        [ -z "$line" ] && continue
        pass
        grep -qiF -- "$line" <<<"$HEADERS" ||
            fail "response headers: no '$line' in: $(tr '\n' '|' <<<"$HEADERS")"
    done <"$CASE_DIR/expect.headers"
fi

if [ -f "$CASE_DIR/expect.events" ]; then
    if events=$(tt_events 2>&1); then
        assert_ndjson_eq "$events" "$(cat "$CASE_DIR/expect.events")" "stored events"
    else
        fail "tokentrail events failed: $events"
    fi
fi

if [ -f "$CASE_DIR/check.sh" ]; then
    . "$CASE_DIR/check.sh"
fi

tt_stop
assert_eq "$TT_RC" 0 "collector exit status after SIGTERM"
tt_done
