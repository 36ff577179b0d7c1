#!/usr/bin/env bash
# t_413_unread_body.sh - a client that writes its whole over-limit body before
# reading (Python http.client, most SDKs) must still get the 413 answer.
#
# Pins a bug: on Content-Length > max_body the collector queues 413 and closes
# the connection without draining the body, so such a client usually gets
# EPIPE / ECONNRESET instead of the answer (always with a 4 MiB body).
set -u
. "$(dirname "$0")/lib.sh"

tt_start --max-body 64KiB || exit 1

out=$(python3 - "$TT_PORT" <<'PY'
import http.client, json, sys
port = int(sys.argv[1])
got = []
for size in [70000, 200000, 1 << 20, 4 << 20, 4 << 20]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/v1/events", body=b" " * size,
                  headers={"Content-Type": "application/x-ndjson"})
        r = c.getresponse()
        body = json.loads(r.read())
        got.append(f"{size}:{r.status}:{'error' in body}")
    except Exception as e:
        got.append(f"{size}:{type(e).__name__}")
    finally:
        c.close()
print(" ".join(got))
PY
)
assert_eq "$out" "70000:413:True 200000:413:True 1048576:413:True 4194304:413:True 4194304:413:True" \
    "size:status:json-error per over-limit request (http.client)"

# curl reads while it sends, so it sees the answer either way.
head -c $((4 << 20)) /dev/zero >"$TT_TMP/big"
tt_post "$TT_TMP/big"
assert_eq "$STATUS" 413 "curl, 4 MiB body"

tt_get /healthz
assert_eq "$STATUS" 200 "/healthz afterwards"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
tt_done
