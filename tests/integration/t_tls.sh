#!/usr/bin/env bash
# t_tls.sh - HTTPS: with --tls-cert/--tls-key the collector serves TLS
# (verified against the self-signed cert), and plain HTTP on that port fails.
set -u
. "$(dirname "$0")/lib.sh"

cert=$TT_TMP/cert.pem
key=$TT_TMP/key.pem
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$key" -out "$cert" >"$TT_TMP/openssl.log" 2>&1 ||
    die "openssl req failed: $(cat "$TT_TMP/openssl.log")"

tt_start --tls-cert "$cert" --tls-key "$key" || exit 1
assert_eq "${TT_URL%%:*}" https "URL scheme"

tt_ev_issued tls1 >"$TT_TMP/ev"
tt_post "$TT_TMP/ev" --cacert "$cert"
assert_eq "$STATUS" 200 "POST over HTTPS, verified"
assert_json_eq "$BODY" '{"accepted":1,"duplicates":0,"rejected":0,"errors":[]}' "HTTPS response"
tt_get /healthz --cacert "$cert"
assert_eq "$STATUS" 200 "/healthz over HTTPS"

# Without the CA, verification fails (the cert really is the one we made).
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$TT_URL/healthz")
rc=$?
assert_eq "$code" 000 "HTTPS without --cacert"
assert_eq "$rc" 60 "curl exit status without --cacert (60 = peer certificate not verified)"
subject=$(openssl s_client -connect "127.0.0.1:$TT_PORT" -servername 127.0.0.1 </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256)
assert_eq "$subject" "$(openssl x509 -in "$cert" -noout -fingerprint -sha256)" "served certificate"

# Plain HTTP to the TLS port gets no HTTP answer.
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TT_PORT/healthz")
assert_eq "$code" 000 "plain HTTP to the TLS port"
tt_ev_issued plain1 >"$TT_TMP/ev2"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
    --data-binary "@$TT_TMP/ev2" "http://127.0.0.1:$TT_PORT/v1/events")
assert_eq "$code" 000 "plain HTTP POST to the TLS port"

# Still serving after the plain-text attempts.
tt_get /readyz --cacert "$cert"
assert_eq "$STATUS" 200 "/readyz over HTTPS afterwards"
assert_eq "$(tt_events | jq -r .id)" tls1 "stored events"
# The private key never reaches the log.
assert_eq "$(grep -c 'PRIVATE KEY' "$TT_LOG")" 0 "key material in the log"
tt_stop
assert_eq "$TT_RC" 0 "exit status"

# A key that does not match the certificate: start-up fails, exit 2.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other -keyout "$TT_TMP/other.key" \
    -out "$TT_TMP/other.pem" >/dev/null 2>&1
err=$(timeout 10 "$TT_BIN" collect --listen 127.0.0.1:0 --db "$TT_TMP/x.db" --tls-cert "$cert" \
    --tls-key "$TT_TMP/other.key" 2>&1 >/dev/null)
assert_eq "$?" 2 "exit status with a mismatched key"
assert_contains "$err" "cannot listen" "mismatched key message"
err=$(timeout 10 "$TT_BIN" collect --listen 127.0.0.1:0 --db "$TT_TMP/x.db" --tls-cert "$TT_TMP/none.pem" \
    --tls-key "$key" 2>&1 >/dev/null)
assert_eq "$?" 2 "exit status with a missing cert file"
assert_contains "$err" "none.pem: cannot open" "missing cert message"
tt_done
