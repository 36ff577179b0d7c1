#!/usr/bin/env bash
# End-to-end smoke test of the OAuth lab: starts it in a temp dir, exercises
# client_credentials, introspection, RS access, RFC 7009 revocation with
# per-RS propagation timing, the device flow (lab approval route), the lab's
# token exchange and admin revocation, then stops everything by PID.
#
# Last line: "lab smoke: N passed, M failed". Exit status non-zero on any failure.
# Env: LAB_SMOKE_KEEP=1 keeps the run dir (logs) after the test.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy

pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   - %s\n' "$*"; }
nok() { fail=$((fail + 1)); printf 'FAIL - %s\n' "$*"; }
check() { # DESC CMD... : pass if CMD succeeds
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else nok "$desc"; fi
}
eq() { [ "$1" = "$2" ] || { printf '       got %q, want %q\n' "$1" "$2"; return 1; }; }
le() { [ "$1" -le "$2" ] || { printf '       %s > %s\n' "$1" "$2"; return 1; }; }
ge() { [ "$1" -ge "$2" ] || { printf '       %s < %s\n' "$1" "$2"; return 1; }; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

finish() {
    echo "lab smoke: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

dir=$(mktemp -d /tmp/tt-lab-smoke.XXXXXX)
stopped=0
cleanup() {
    [ "$stopped" = 1 ] || "$here/lab.sh" stop "$dir" >/dev/null 2>&1 || true
    if [ "${LAB_SMOKE_KEEP:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

if ! "$here/lab.sh" deps; then nok "lab.sh deps"; finish; exit 1; fi
if ! "$here/lab.sh" start "$dir"; then nok "lab.sh start"; finish; exit 1; fi
ok "lab started"
# shellcheck disable=SC1091
. "$dir/lab.env"
read -r -a RS <<<"$RS_NAMES"
rsvar() { local n=${1^^}; n=${n//-/_}; eval "printf '%s' \"\${${n}_$2}\""; }

SVC_AUTH="$CLIENT_SVC_ID:$(cat "$CLIENT_SVC_SECRET_FILE")"
BATCH_AUTH="$CLIENT_BATCH_ID:$(cat "$CLIENT_BATCH_SECRET_FILE")"
EXCH_AUTH="$CLIENT_EXCHANGER_ID:$(cat "$CLIENT_EXCHANGER_SECRET_FILE")"
ADMIN_AUTH="$CLIENT_ADMIN_ID:$(cat "$CLIENT_ADMIN_SECRET_FILE")"
RSI_AUTH="$RS_NOCACHE_CLIENT_ID:$(cat "$RS_NOCACHE_SECRET_FILE")"
APPROVE_SECRET=$(cat "$LAB_APPROVE_SECRET_FILE")
C=(curl -s -m 5)
tmp="$dir/smoke"
mkdir -p "$tmp"

cc_token() { # AUTH SCOPE [RESOURCE] -> JSON body
    local args=(-u "$1" -d grant_type=client_credentials --data-urlencode "scope=$2")
    [ -z "${3:-}" ] || args+=(--data-urlencode "resource=$3")
    "${C[@]}" "${args[@]}" "$AS_TOKEN_URL"
}
introspect() { "${C[@]}" -u "$RSI_AUTH" --data-urlencode "token=$1" "$AS_INTROSPECT_URL"; }
rs_code() { "${C[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "$1"; }
sha_tid() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }

# --- 1. client_credentials --------------------------------------------------
body=$(cc_token "$SVC_AUTH" db:orders:read "$LAB_RESOURCE")
TOKEN=$(jq -r '.access_token // empty' <<<"$body")
check "client_credentials token issued" test -n "$TOKEN"
check "token response scope = db:orders:read" eq "$(jq -r .scope <<<"$body")" db:orders:read
check "token_type Bearer, expires_in = LAB_ACCESS_TTL" eq "$(jq -r '"\(.token_type) \(.expires_in)"' <<<"$body")" "Bearer $LAB_ACCESS_TTL"
body=$(cc_token "$SVC_AUTH" "db:orders:read db:orders:write")
check "default resource grants API scopes without a resource parameter" eq "$(jq -r .scope <<<"$body")" "db:orders:read db:orders:write"
body=$(cc_token "$BATCH_AUTH" "db:orders:write")
check "scope not allowed for the client is dropped (no error)" eq "$(jq -r '.scope // "none"' <<<"$body")" none
body=$(cc_token "$SVC_AUTH" db:orders:read urn:not-a-lab-resource)
check "unknown resource -> invalid_target" eq "$(jq -r .error <<<"$body")" invalid_target

# --- 2. introspection -------------------------------------------------------
body=$(introspect "$TOKEN")
check "introspection: active true" eq "$(jq -r .active <<<"$body")" true
check "introspection: client_id, scope, aud" eq "$(jq -r '"\(.client_id) \(.scope) \(.aud)"' <<<"$body")" "tt-svc db:orders:read $LAB_RESOURCE"
TID=$(sha_tid "$TOKEN")
check "introspection: tid = sha256(token)" eq "$(jq -r .tid <<<"$body")" "$TID"

# --- 3. use on every RS (this also fills the caching RSs' caches) ------------
for rs in "${RS[@]}"; do
    api=$(rsvar "$rs" API)
    code=$("${C[@]}" -o "$tmp/$rs.body" -D "$tmp/$rs.hdr" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$api")
    check "$rs accepts the token (200)" eq "$code" 200
    check "$rs JSON body names the RS" eq "$(jq -r .rs "$tmp/$rs.body" 2>/dev/null)" "$rs"
    check "$rs passes tid to the app" eq "$(tr -d '\r' <"$tmp/$rs.hdr" | sed -n 's/^X-Lab-Tid: //Ip')" "$TID"
done
check "request without token -> 401" eq "$(rs_code "$RS_NOCACHE_API" "")" 401

# --- 4. revoke (RFC 7009) right after the RSs cached it, probe every 20 ms ---
code=$("${C[@]}" -o /dev/null -w '%{http_code}' -u "$SVC_AUTH" --data-urlencode "token=$TOKEN" -d token_type_hint=access_token "$AS_REVOKE_URL")
t0=$(now_ms)
check "revocation by owner -> 200" eq "$code" 200
probe() { # RS: every 20 ms until 401, prints ms since revocation (or "timeout")
    local api t
    api=$(rsvar "$1" API)
    while :; do
        if [ "$(rs_code "$api" "$TOKEN")" = 401 ]; then
            t=$(now_ms)
            echo $((t - t0))
            return
        fi
        [ $(($(now_ms) - t0)) -lt 15000 ] || { echo timeout; return; }
        sleep 0.02
    done
}
for rs in "${RS[@]}"; do probe "$rs" >"$tmp/$rs.prop" & done
wait
for rs in "${RS[@]}"; do
    ms=$(cat "$tmp/$rs.prop")
    exp_s=$(rsvar "$rs" EXPIRY)
    echo "       propagation $rs (expiry=${exp_s}s): ${ms} ms"
    if [ "$ms" = timeout ]; then nok "$rs rejects the revoked token"; continue; fi
    if [ "$exp_s" -eq 0 ]; then
        check "$rs rejects the revoked token within 500 ms" le "$ms" 500
    else
        check "$rs rejects the revoked token within its cache expiry (+1 s)" le "$ms" $((exp_s * 1000 + 1000))
        if [ "$exp_s" -ge 3 ]; then
            check "$rs served from cache after revocation (>= $(((exp_s - 2) * 1000)) ms)" ge "$ms" $(((exp_s - 2) * 1000))
        fi
    fi
done
check "introspection after revocation: active false" eq "$(introspect "$TOKEN" | jq -r .active)" false

# --- 5. device flow (RFC 8628) with the lab approval route -----------------
body=$("${C[@]}" -d "client_id=$CLIENT_DEVICE_ID" --data-urlencode "scope=db:orders:read" "$AS_DEVICE_AUTH_URL")
DC=$(jq -r '.device_code // empty' <<<"$body")
UC=$(jq -r '.user_code // empty' <<<"$body")
check "device authorization: device_code and user_code" test -n "$DC" -a -n "$UC"
poll() { "${C[@]}" -d "client_id=$CLIENT_DEVICE_ID" -d grant_type=urn:ietf:params:oauth:grant-type:device_code --data-urlencode "device_code=$DC" "$AS_TOKEN_URL"; }
check "device poll before approval: authorization_pending" eq "$(poll | jq -r .error)" authorization_pending
check "lab approval without the secret -> 401" eq "$("${C[@]}" -o /dev/null -w '%{http_code}' --data-urlencode "user_code=$UC" "$AS_APPROVE_URL")" 401
body=$("${C[@]}" -H "Authorization: Bearer $APPROVE_SECRET" --data-urlencode "user_code=$UC" "$AS_APPROVE_URL")
check "lab approval with the secret" eq "$(jq -r .approved <<<"$body")" true
body=$(poll)
DTOKEN=$(jq -r '.access_token // empty' <<<"$body")
check "device poll after approval: token with scope db:orders:read" eq "$(jq -r .scope <<<"$body")" db:orders:read
check "device token accepted by rs-nocache" eq "$(rs_code "$RS_NOCACHE_API" "$DTOKEN")" 200
check "device token introspects with sub" eq "$(introspect "$DTOKEN" | jq -r '"\(.active) \(.sub) \(.client_id)"')" "true lab-user tt-device"

# --- 6. token exchange (lab extension, RFC 8693) ----------------------------
SUBJ=$(cc_token "$SVC_AUTH" "db:orders:read db:orders:write" | jq -r .access_token)
body=$("${C[@]}" -u "$EXCH_AUTH" -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    --data-urlencode "subject_token=$SUBJ" -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \
    "$AS_TOKEN_URL")
XTOKEN=$(jq -r '.access_token // empty' <<<"$body")
check "token exchange: narrowed to the exchanger's scope" eq "$(jq -r '"\(.issued_token_type) \(.scope)"' <<<"$body")" "urn:ietf:params:oauth:token-type:access_token db:orders:read"
check "exchanged token: act and subject_tid" eq "$(introspect "$XTOKEN" | jq -r '"\(.act.sub) \(.subject_tid)"')" "tt-exchanger $(sha_tid "$SUBJ")"
check "exchanged token accepted by rs-nocache" eq "$(rs_code "$RS_NOCACHE_API" "$XTOKEN")" 200

# --- 7. revocation policy: others may not, the lab admin may -----------------
body=$("${C[@]}" -u "$BATCH_AUTH" --data-urlencode "token=$SUBJ" "$AS_REVOKE_URL")
check "revocation by a different client -> invalid_request" eq "$(jq -r .error <<<"$body")" invalid_request
check "token still active after refused revocation" eq "$(introspect "$SUBJ" | jq -r .active)" true
check "revocation by the admin client -> 200" eq "$("${C[@]}" -o /dev/null -w '%{http_code}' -u "$ADMIN_AUTH" --data-urlencode "token=$SUBJ" "$AS_REVOKE_URL")" 200
check "admin-revoked token inactive" eq "$(introspect "$SUBJ" | jq -r .active)" false
check "revoking an unknown token -> 200 (RFC 7009)" eq "$("${C[@]}" -o /dev/null -w '%{http_code}' -u "$SVC_AUTH" -d token=no-such-token "$AS_REVOKE_URL")" 200

# --- 8. latency figures (informational) --------------------------------------
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR + 1) / 2)] : "n/a")}'; }
for _ in $(seq 1 20); do "${C[@]}" -o /dev/null -w '%{time_total}\n' -u "$SVC_AUTH" -d grant_type=client_credentials -d scope=db:orders:read "$AS_TOKEN_URL"; done |
    awk '{printf "%d\n", $1 * 1000000}' >"$tmp/tok.us"
T2=$(cc_token "$SVC_AUTH" db:orders:read | jq -r .access_token)
for _ in $(seq 1 20); do "${C[@]}" -o /dev/null -w '%{time_total}\n' -u "$RSI_AUTH" --data-urlencode "token=$T2" "$AS_INTROSPECT_URL"; done |
    awk '{printf "%d\n", $1 * 1000000}' >"$tmp/intro.us"
for _ in $(seq 1 20); do "${C[@]}" -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $T2" "$RS_NOCACHE_API"; done |
    awk '{printf "%d\n", $1 * 1000000}' >"$tmp/rs.us"
echo "       median over 20 (new connection each): token $(median <"$tmp/tok.us") us, introspection $(median <"$tmp/intro.us") us, rs-nocache request $(median <"$tmp/rs.us") us"

# --- 8b. storage: more than 1000 live tokens (the stock adapter is a 1000-entry LRU)
if out=$(node "$here/burst.mjs" "$AS_TOKEN_URL" "$CLIENT_SVC_ID" "$CLIENT_SVC_SECRET_FILE" 1200 8); then
    ok "burst of 1200 tokens: all issued"
else
    nok "burst of 1200 tokens: all issued"
fi
echo "       burst: $out"
check "token issued before the burst still active" eq "$(introspect "$T2" | jq -r .active)" true

# --- 9. logs: JSON, token ids, never raw tokens -----------------------------
jsonl_ok() { [ -s "$1" ] && jq -e . "$1" >/dev/null 2>&1; }
check "RS access log lines are all JSON" jsonl_ok "$RS_ACCESS_LOG"
check "RS access log has tid for accepted requests" test "$(jq -r "select(.status == 200 and .tid == \"$TID\") | .rs" "$RS_ACCESS_LOG" | sort -u | wc -l)" -eq "${#RS[@]}"
check "AS event log lines are all JSON" jsonl_ok "$AS_EVENTS_LOG"
check "AS events: client_credentials.saved/destroyed for the token" eq "$(jq -r "select(.tid == \"$TID\") | .ev" "$AS_EVENTS_LOG" | grep -c 'client_credentials\.\(saved\|destroyed\)')" 2
leak=0
for t in "$TOKEN" "$DTOKEN" "$XTOKEN" "$SUBJ" "$T2"; do
    [ -z "$t" ] || ! grep -rqF -- "$t" "$dir/logs" || leak=1
done
check "no raw token value in any log" eq "$leak" 0

# --- 10. stop by PID ----------------------------------------------------------
"$here/lab.sh" stop "$dir"
stopped=1
gone=1
kill -0 "$AS_PID" 2>/dev/null && gone=0
kill -0 "$APACHE_PID" 2>/dev/null && gone=0
check "lab stopped (AS and Apache PIDs gone)" eq "$gone" 1
check "lab.sh stop is idempotent" "$here/lab.sh" stop "$dir"

finish
