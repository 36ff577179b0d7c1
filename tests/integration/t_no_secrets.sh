#!/usr/bin/env bash
# t_no_secrets.sh - raw tokens sent in events never reach the disk or the
# log: not in the database, its WAL or SHM, nor the collector's output, not
# even from rejected events; their sha256 fingerprints do reach the database.
set -u
. "$(dirname "$0")/lib.sh"

tt_start --log-level debug || exit 1

# Distinctive raw tokens; the checks look for a 20-byte core of each.
s_ok1='RAWTOK-ok1-Zq8Xv3Lm0Pw7Rt5Ny2Kb'
s_ok2='eyJhbGciOiJSUzI1NiJ9.RAWTOK-jwt-Hc4Ud9Fe6Gi1.c2lnbmF0dXJl'
s_rej='RAWTOK-rej-Wm3Qs8Ta0Vx5Yb2Zc7'
s_bad='RAWTOK-bad-Jn6Pk1Lr9Ms4Nt8Ou3'
s_gz='RAWTOK-gzp-Bd5Ce0Df7Eg2Fh9Gi4'
s_arr='RAWTOK-arr-Xy1Zw2Vu3Ts4Rq5Po6'
s_ext='RAWTOK-ext-Lk2Jh3Gf4Ds5Ap6Mn'
s_qry='RAWTOK-qry-Ha7Jb8Kc9Ld0Me1Nf'   # ?access_token= in data.path (RFC 6750 2.3)
s_cs='RAWTOK-csq-Pa1Qb2Rc3Sd4Te5Uf'    # ?client_secret= in data.path
s_pw='RAWTOK-pwd-Vg6Wh7Xi8Yj9Zk0Al'    # the password of a URL's user info
s_brr='RAWTOK-brr-Bm2Cn3Do4Ep5Fq6Gr'   # after "Bearer " in a free-text reason
s_jwt='eyJhbGciOiJIUzI1NiJ9.eyJSQVdUT0siOiJqd3QtaW4tc3ViamVjdCJ9.RAWTOK-jws-Hs7It8Ju9Kv0'  # in the subject

{
    tt_ev_issued s1 as "$s_ok1"
    printf '{"specversion":"1.0","id":"s2","source":"gw","type":"token.used","time":"2026-11-22T07:01:00Z","data":{"token":"%s","resource":"db:orders"}}\n' "$s_ok2"
    # rejected after the token was read (bad expires_at)
    printf '{"specversion":"1.0","id":"s3","source":"as","type":"token.issued","time":"2026-11-22T07:00:00Z","data":{"token":"%s","client_id":"c","scopes":"a","issued_at":"2026-11-22T07:00:00Z","expires_at":"soon"}}\n' "$s_rej"
    # unparseable JSON that breaks off inside the token
    printf '{"specversion":"1.0","id":"s4","data":{"token":"%s\n' "$s_bad"
    # a token where it does not belong (unknown field)
    printf '{"specversion":"1.0","id":"s5","source":"as","type":"incident.resolved","time":"2026-11-22T07:00:00Z","data":{"incident_id":"I","resolved_at":"2026-11-22T07:00:00Z","token":"%s"}}\n' "$s_rej"
    # a token in an extension attribute named like a credential
    printf '{"specversion":"1.0","id":"s5x","source":"gw","type":"token.used","time":"2026-11-22T07:02:00Z","accesstoken":"%s","data":{"token_id":"a","resource":"r"}}\n' "$s_ext"
    # credentials in the request URI an access log forwarded: accepted, redacted
    # credentials pasted into free text: accepted, fingerprinted
    printf '{"specversion":"1.0","id":"s5r","source":"ops","type":"token.revoked","time":"2026-11-22T07:04:00Z","subject":"%s","data":{"token_id":"r","reason":"pasted Authorization: Bearer %s in #ops"}}\n' "$s_jwt" "$s_brr"
    printf '{"specversion":"1.0","id":"s5q","source":"gw","type":"token.used","time":"2026-11-22T07:03:00Z","data":{"token_id":"q","resource":"r","path":"https://ops:%s@api.example/v1/orders?access_token=%s&limit=5;client_secret=%s"}}\n' "$s_pw" "$s_qry" "$s_cs"
} >"$TT_TMP/req.ndjson"
tt_post "$TT_TMP/req.ndjson"
assert_eq "$STATUS" 200 "ndjson status"
assert_jq "$BODY" '.accepted == 4 and .rejected == 4' "ndjson counts"
assert_jq "$BODY" '[.errors[] | select(.id == "s5x" and (.error | startswith("accesstoken: extension attribute named like a credential")))] | length == 1' \
    "extension named like a credential: rejected with the reason"
resp_all=$BODY

tt_ev_issued s6 as "$s_gz" | gzip -c >"$TT_TMP/req.gz"
tt_post "$TT_TMP/req.gz" -H 'Content-Encoding: gzip'
assert_eq "$STATUS" 200 "gzip status"
resp_all+=$BODY

printf '[%s]' "$(tt_ev_issued s7 as "$s_arr")" >"$TT_TMP/req.json"
tt_post "$TT_TMP/req.json" -H 'Content-Type: application/json'
assert_eq "$STATUS" 200 "array status"
resp_all+=$BODY

# A token in an unparseable single JSON document (jansson's "near" text).
printf '{"data":{"token":"%s' "$s_bad" >"$TT_TMP/req.broken"
tt_post "$TT_TMP/req.broken" -H 'Content-Type: application/json'
assert_eq "$STATUS" 400 "broken JSON status"
resp_all+=$BODY

core() { printf '%s' "$1" | cut -c8-27; }   # the distinctive part

check_files() {
    local when=$1 f s
    local files=("$TT_DB" "$TT_DB-wal" "$TT_DB-shm" "$TT_LOG")
    for f in "${files[@]}"; do
        [ -e "$f" ] || { note "$when: $(basename "$f") absent"; continue; }
        note "$when: $(basename "$f") $(wc -c <"$f") bytes"
        for s in "$s_ok1" "$s_ok2" "$s_rej" "$s_bad" "$s_gz" "$s_arr" "$s_ext" "$s_qry" "$s_cs" "$s_pw" "$s_brr" "$s_jwt"; do
            pass
            if grep -aqF -- "$(core "$s")" "$f"; then
                fail "$when: raw token '$s' found in $f"
            fi
        done
    done
}

# While running: the events live in the WAL, and the SHM exists.
assert_eq "$( [ -e "$TT_DB-wal" ] && echo yes)" yes "WAL file exists while running"
check_files running
for s in "$s_ok1" "$s_ok2" "$s_rej" "$s_bad" "$s_gz" "$s_arr" "$s_ext" "$s_qry" "$s_cs" "$s_pw" "$s_brr" "$s_jwt"; do
    assert_not_contains "$resp_all" "$(core "$s")" "responses"
done
# The fingerprints are in the database files (DB or WAL).
for s in "$s_ok1" "$s_ok2" "$s_gz" "$s_arr"; do
    fp=$(tt_fingerprint "$s")
    pass
    cat "$TT_DB" "$TT_DB-wal" 2>/dev/null | grep -aqF "$fp" || fail "fingerprint $fp of '$s' not in the database files"
    assert_eq "$(tt_events --token "$fp" | grep -c .)" 1 "events stored under $fp"
done

# The path is stored with the query token as its fingerprint and the other
# credentials as <redacted>.
fp=$(tt_fingerprint "$s_qry")
assert_eq "$(tt_events --token q | jq -r .data.path)" \
    "https://ops:<redacted>@api.example/v1/orders?access_token=$fp&limit=5;client_secret=<redacted>" \
    "credentials in data.path redacted"
assert_eq "$(tt_events --token r | jq -r '.subject + " | " + .data.reason')" \
    "$(tt_fingerprint "$s_jwt") | pasted Authorization: Bearer $(tt_fingerprint "$s_brr") in #ops" \
    "credentials in free text fingerprinted"

tt_stop
assert_eq "$TT_RC" 0 "exit status"
check_files stopped
tt_done
