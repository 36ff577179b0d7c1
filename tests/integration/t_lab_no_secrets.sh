#!/usr/bin/env bash
# t_lab_no_secrets.sh - "raw tokens and secrets never reach disk, Kafka or
# logs: only sha256: fingerprints", end to end with the real drill lab.
#
# The lab AS runs with LAB_TOKEN_LOG (test instrumentation: it appends the raw
# value of every access token it issues to a 0600 file). A collector on
# SQLite (--log-level debug, an ingest token) gets the drills' and the lab's
# events; three drills run (client_credentials + revoke on every RS,
# device_code, token exchange) with --out, --junit, --textfile and
# --log-level debug; then `analyze --once`, `findings`, `events`, and
# `evidence keygen/export/verify` with the bundle extracted. Every file
# tokentrail wrote is then grepped (grep -a -F) for every raw token, every lab
# secret (also as an HTTP Basic credential) and the ingest token: once while
# the collector runs, once after it stopped. A hit fails and names the file,
# the kind of secret and the first 12 hex digits of its SHA-256, never the
# value. Not vacuous: the token log must hold at least one token per drill
# iteration, every drill token fingerprint must be one of them, and their
# sha256: fingerprints must be found in the collector's database.
set -u
. "$(dirname "$0")/lib.sh"

LAB_SH=$TT_ROOT/tests/lab/lab.sh
SC=$TT_ROOT/drills/scenarios
# Apache's children (www-data) must traverse the lab directory, and run.sh's
# scratch directory is 0700: the lab gets its own world-traversable one.
LAB=$(mktemp -d /tmp/tt-lab-nosecrets.XXXXXX)
chmod 0755 "$LAB"
[ "$(id -u)" = 0 ] || die "the lab's Apache needs root (run the tests as root, as CI does)"
"$LAB_SH" deps >"$TT_TMP/lab-deps.log" 2>&1 || die "lab.sh deps failed: $(tail -3 "$TT_TMP/lab-deps.log")"

# Stop the lab by PID whatever happens, then the collectors (lib.sh).
trap '_rc=$?; "$LAB_SH" stop "$LAB" >/dev/null 2>&1; rm -rf "$LAB"; (exit $_rc); _tt_cleanup' EXIT

# What we look for lives in IN (never scanned); everything tokentrail writes
# goes to W or the collector's directory (scanned). The commands run with W
# as their working directory, so a stray file they write is scanned too.
IN=$TT_TMP/inputs
W=$TT_TMP/w
mkdir -p "$IN" "$W/drills" "$W/analyze" "$W/evidence/x"
chmod 0700 "$IN"
TOKLOG=$IN/lab-tokens.log
INGEST=$IN/ingest.token
(umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$INGEST")
T_START=$(($(date +%s) - 3600))

tt_start --log-level debug --ingest-token-file "$INGEST" || die "collector did not start"
export TT_COLLECTOR_URL=$TT_URL/v1/events
export TT_INGEST_TOKEN_FILE=$INGEST
LAB_TOKEN_LOG=$TOKLOG LAB_COLLECTOR_URL=$TT_COLLECTOR_URL LAB_COLLECTOR_TOKEN_FILE=$INGEST \
    "$LAB_SH" start "$LAB" >"$TT_TMP/lab-start.log" 2>&1 ||
    die "lab.sh start failed: $(tail -5 "$TT_TMP/lab-start.log")"
set -a
. "$LAB/lab.env"
set +a
assert_eq "$(stat -c %a "$TOKLOG" 2>/dev/null)" 600 "LAB_TOKEN_LOG file mode"

# ---- 1. drills: every grant type, every report format, debug logs ----
# The shipped scenarios, each with a collector section that sends the
# drill's events to our collector with the ingest token.
with_collector() { # SRC DST: drop any top-level collector: block, add ours
    awk '/^collector:/ { skip = 1; next } skip && /^[ \t]/ { next } { skip = 0; print }' "$1" >"$2"
    # shellcheck disable=SC2016 # the drill expands ${...} itself
    printf 'collector:\n  url: ${TT_COLLECTOR_URL}\n  token_file: ${TT_INGEST_TOKEN_FILE}\n' >>"$2"
}
ITER=0
drill() { # NAME SCENARIO EXPECTED_RC
    local name=$1 rc
    with_collector "$SC/$2" "$IN/$name.yaml"
    (cd "$W" && "$TT_BIN" drill run "$IN/$name.yaml" --log-level debug --out "$W/drills/$name" \
        --junit "$W/drills/$name-junit.xml" --textfile "$W/drills/$name.prom" \
        >"$W/drills/$name.stdout" 2>"$W/drills/$name.stderr")
    rc=$?
    assert_eq "$rc" "$3" "drill $name exit status; stderr: $(tail -c 300 "$W/drills/$name.stderr")"
    local n
    n=$(jq '.iterations | length' "$W/drills/$name/report.json" 2>/dev/null || echo 0)
    assert_lt 0 "$n" "drill $name iterations in report.json"
    ITER=$((ITER + n))
    for f in report.json report.html junit.xml; do
        [ -s "$W/drills/$name/$f" ] || fail "drill $name wrote no $f"
    done
    [ -s "$W/drills/$name-junit.xml" ] || fail "drill $name wrote no --junit file"
    [ -s "$W/drills/$name.prom" ] || fail "drill $name wrote no --textfile"
}
drill revoke lab-revoke.yaml 1     # 1: rs-cache5 lingers, by design of the lab
drill device lab-device.yaml 0
drill exchange lab-exchange.yaml 0

# Stop the lab: the forwarder sends what is left on TERM, so every AS and RS
# event is in the collector before the analysis.
"$LAB_SH" stop "$LAB" >"$TT_TMP/lab-stop.log" 2>&1

# ---- 2. analyze, findings, events ----
(cd "$W" && "$TT_BIN" analyze --db "$TT_DB" --policy "$SC/lab-policy.yaml" --once --format json \
    --log-level debug >"$W/analyze/analyze.stdout" 2>"$W/analyze/analyze.stderr")
rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "analyze --once exit status $rc: $(tail -c 300 "$W/analyze/analyze.stderr")"
pass
(cd "$W" && "$TT_CLI" findings --db "$TT_DB" --format json >"$W/analyze/findings.out" 2>&1)
assert_eq "$?" 0 "findings exit status"
(cd "$W" && "$TT_CLI" events --db "$TT_DB" --format json >"$W/analyze/events.out" 2>&1)
assert_eq "$?" 0 "events exit status"
assert_lt 0 "$(grep -c '"sha256:' "$W/analyze/events.out")" "events carry sha256: fingerprints"

# ---- 3. evidence bundle of the whole trail ----
E=$W/evidence
(cd "$W" && "$TT_CLI" evidence keygen -o "$E/signer" >"$E/keygen.out" 2>&1)
assert_eq "$?" 0 "evidence keygen"
(cd "$W" && "$TT_CLI" evidence export --db "$TT_DB" --from "$T_START" --to $(($(date +%s) + 3600)) \
    --key "$E/signer.key" --policy "$SC/lab-policy.yaml" --drill-reports "$W/drills" \
    -o "$E/bundle.tar.gz" --no-progress >"$E/export.out" 2>&1)
assert_eq "$?" 0 "evidence export: $(tail -c 300 "$E/export.out")"
(cd "$W" && "$TT_CLI" evidence verify "$E/bundle.tar.gz" --pubkey "$E/signer.pub" >"$E/verify.out" 2>&1)
assert_eq "$?" 0 "evidence verify: $(tail -c 300 "$E/verify.out")"
tar -xzf "$E/bundle.tar.gz" -C "$E/x"
assert_eq "$?" 0 "bundle extracts"
assert_lt 0 "$(grep -c . "$E/x/events.ndjson" 2>/dev/null || echo 0)" "bundle has events"
assert_lt 0 "$(find "$E/x/drills" -name report.json 2>/dev/null | grep -c .)" "bundle has drill reports"

# ---- 4. what to look for ----
sort -u "$TOKLOG" | grep . >"$IN/tokens.uniq"
NTOK=$(grep -c . "$IN/tokens.uniq")
note "lab issued $NTOK access tokens; the drills ran $ITER iterations"
assert_le "$ITER" "$NTOK" "raw tokens in LAB_TOKEN_LOG (at least one per drill iteration)"
assert_lt 0 "$ITER" "drill iterations"
assert_eq "$(grep -cv '^[A-Za-z0-9_-]\{43\}$' "$IN/tokens.uniq")" 0 "token log lines are 43-character opaque tokens"

declare -A KIND=() # value -> what it is (the value itself is never printed)
: >"$IN/patterns"
add_secret() { # VALUE KIND
    [ -n "$1" ] || return 0
    KIND[$1]=$2
    printf '%s\n' "$1" >>"$IN/patterns"
}
declare -A FPR=() # sha256:hex of every raw token
while read -r t; do
    add_secret "$t" "raw access token"
    FPR["sha256:$(printf '%s' "$t" | sha256sum | cut -d' ' -f1)"]=1
done <"$IN/tokens.uniq"
NSEC=0
for f in "$LAB"/secrets/*.secret; do
    id=$(basename "$f" .secret)
    s=$(cat "$f")
    if [ "$id" = approve ]; then
        add_secret "$s" "lab approval secret"
    else
        add_secret "$s" "client secret of $id"
        add_secret "$(printf '%s:%s' "$id" "$s" | base64 -w0)" "client secret of $id (HTTP Basic form)"
    fi
    NSEC=$((NSEC + 1))
done
add_secret "$(cat "$INGEST")" "collector ingest token"
add_secret "$(cat "$LAB_APPROVE_SECRET_FILE" 2>/dev/null)" "lab approval secret"
assert_eq "$NSEC" $((5 + $(wc -w <<<"$RS_NAMES"))) "lab secret files (4 clients, each resource server, approval)"

# Every token the drills report is one the lab logged.
for r in "$W"/drills/*/report.json; do
    for id in $(jq -r '.iterations[].token_id // empty' "$r"); do
        [ -n "${FPR[$id]:-}" ] || fail "$(basename "$(dirname "$r")") drill token $id is not in LAB_TOKEN_LOG"
    done
done
pass

# scan PHASE FILE...: grep -a -F every file for every pattern; a hit fails
# with the file, the kind and a fingerprint prefix.
SCANNED=0
scan() {
    local phase=$1 f m h
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        SCANNED=$((SCANNED + 1))
        pass
        while IFS= read -r m; do
            h=$(printf '%s' "$m" | sha256sum | cut -c1-12)
            fail "$phase: ${KIND[$m]:-secret} (sha256 $h...) found in ${f#"$TT_TMP"/}"
        done < <(grep -a -o -F -f "$IN/patterns" -- "$f" | sort -u)
    done
}
# Every file tokentrail wrote: the collector's directory (database, -wal,
# -shm, its log), W (drill reports, JUnit, textfiles, drill/analyzer/CLI
# output, the evidence bundle and its contents), plus the forwarder's log
# (the lab's glue that ships events to tokentrail). Not the AS's own logs.
tokentrail_files() {
    find "$TT_DIR" "$W" -type f
    [ -f "$LAB/logs/forward.log" ] && printf '%s\n' "$LAB/logs/forward.log"
}
# The database as SQL text, too: a value split across pages would escape a
# grep of the file.
sqlite3 -readonly "$TT_DB" .dump >"$W/db-dump.sql" 2>"$W/db-dump.err"
assert_eq "$?" 0 "sqlite3 .dump of the live database"

# ---- 5. scan while the collector runs ----
[ -f "$TT_DB-wal" ] || fail "no $TT_DB-wal while the collector runs"
mapfile -t FILES < <(tokentrail_files)
scan "collector running" "${FILES[@]}"
note "scanned ${#FILES[@]} files while the collector ran: $(printf '%s\n' "${FILES[@]}" | sed "s|^$TT_TMP/||" | tr '\n' ' ')"

# The right files: the tokens' fingerprints are in the collector's store.
found=0
for id in "${!FPR[@]}"; do
    if grep -a -q -F "$id" "$TT_DB" "$TT_DB-wal" 2>/dev/null; then found=$((found + 1)); fi
done
note "$found of $NTOK token fingerprints found in the live database files"
assert_lt 0 "$found" "sha256: fingerprints of lab tokens in the collector DB (while running)"

# ---- 6. stop the collector and scan again ----
tt_stop
assert_eq "$TT_RC" 0 "collector exit status"
sqlite3 -readonly "$TT_DB" .dump >"$W/db-dump.sql" 2>"$W/db-dump.err"
mapfile -t FILES < <(tokentrail_files)
scan "collector stopped" "${FILES[@]}"
found=0
for id in "${!FPR[@]}"; do
    if grep -a -q -F "$id" "$TT_DB"; then found=$((found + 1)); fi
done
note "$found of $NTOK token fingerprints found in $(basename "$TT_DB") after the stop"
assert_lt 0 "$found" "sha256: fingerprints of lab tokens in the collector DB (after stop)"
note "$SCANNED file scans, $(grep -c . "$IN/patterns") secret patterns"

tt_done
