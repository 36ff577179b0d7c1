# lib.sh - helpers for the integration tests: start/stop collectors, post
# bodies, and assertions that say what was expected. Source it from bash.
#
# Every collector started here is remembered by PID and stopped on exit,
# also when a test fails or is interrupted. Assertions are not fatal: each
# failure is printed ("FAIL: ...") and counted, the test goes on, and the exit
# status says whether anything failed. Use `die` when going on makes no sense.
#
# Environment: TT_BIN (collector binary, default bin/tokentrail), TT_CLI
# (binary for `tokentrail events`, default bin/tokentrail), TT_TMP (scratch
# root; run.sh gives each test its own).

# The repository root, whatever the caller's directory.
TT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TT_IDIR=$TT_ROOT/tests/integration

_tt_abs() {
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$TT_ROOT/$1" ;;
    esac
}

TT_BIN=$(_tt_abs "${TT_BIN:-bin/tokentrail}")
TT_CLI=$(_tt_abs "${TT_CLI:-bin/tokentrail}")
if [ -z "${TT_TMP:-}" ]; then
    TT_TMP=$(mktemp -d /tmp/tt-integration.XXXXXX)
fi
mkdir -p "$TT_TMP"
export TT_TMP

# Counts live in files so that assertions made in subshells count too.
: >>"$TT_TMP/failures"
: >>"$TT_TMP/asserts"
TT_PIDS=()        # every collector started by this shell
TT_START_TIMEOUT=10
TT_STOP_TIMEOUT=15

# ---- reporting ----

# Print a failure and count it; the test continues.
# run.sh shows the first failure's first line as the reason.
fail() {
    echo "FAIL: $*" >&2
    printf '%s\n' "$*" | head -n 1 >>"$TT_TMP/failures"
}

tt_failures() {
    grep -c . "$TT_TMP/failures"
}

# Fail and stop the test now.
die() {
    fail "$@"
    exit 1
}

pass() {
    printf . >>"$TT_TMP/asserts"
}

note() {
    echo "# $*"
}

# assert_eq ACTUAL EXPECTED [WHAT]
assert_eq() {
    pass
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: expected '$2', got '$1'"
        return 1
    fi
}

# assert_ne ACTUAL UNEXPECTED [WHAT]
assert_ne() {
    pass
    if [ "$1" = "$2" ]; then
        fail "${3:-value}: expected anything but '$2'"
        return 1
    fi
}

# assert_le A B [WHAT]: integers, A <= B
assert_le() {
    pass
    if ! [ "$1" -le "$2" ] 2>/dev/null; then
        fail "${3:-value}: expected $1 <= $2"
        return 1
    fi
}

# assert_lt A B [WHAT]: integers, A < B
assert_lt() {
    pass
    if ! [ "$1" -lt "$2" ] 2>/dev/null; then
        fail "${3:-value}: expected $1 < $2"
        return 1
    fi
}

# assert_json_eq ACTUAL_JSON EXPECTED_JSON [WHAT]: equal after jq -S.
assert_json_eq() {
    pass
    local a e
    if ! a=$(printf '%s' "$1" | jq -S . 2>&1); then
        fail "${3:-json}: actual is not JSON: $(printf '%s' "$1" | head -c 300)"
        return 1
    fi
    if ! e=$(printf '%s' "$2" | jq -S . 2>&1); then
        fail "${3:-json}: expected is not JSON (test bug): $e"
        return 1
    fi
    if [ "$a" != "$e" ]; then
        fail "${3:-json}: differs from expected (- expected, + actual):"
        diff -u <(printf '%s\n' "$e") <(printf '%s\n' "$a") | tail -n +3 | head -n 60 >&2
        return 1
    fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    pass
    case $1 in
    *"$2"*) return 0 ;;
    esac
    fail "${3:-text}: expected to contain '$2'; got: $(printf '%s' "$1" | head -c 400)"
    return 1
}

# assert_not_contains HAYSTACK NEEDLE [WHAT]
assert_not_contains() {
    pass
    case $1 in
    *"$2"*)
        fail "${3:-text}: must not contain '$2'; got: $(printf '%s' "$1" | head -c 400)"
        return 1
        ;;
    esac
}

# assert_jq JSON FILTER [WHAT]: the jq filter must yield true.
assert_jq() {
    pass
    local r
    r=$(printf '%s' "$1" | jq -e "$2" 2>&1)
    if [ "$r" != true ]; then
        fail "${3:-json}: expected $2 to hold; got '$r' for: $(printf '%s' "$1" | head -c 300)"
        return 1
    fi
}

# assert_ndjson_eq ACTUAL EXPECTED [WHAT]: NDJSON, line by line, each jq -S equal.
assert_ndjson_eq() {
    pass
    local a e
    a=$(printf '%s\n' "$1" | jq -cS . 2>&1) || { fail "${3:-ndjson}: actual is not NDJSON: $a"; return 1; }
    e=$(printf '%s\n' "$2" | jq -cS . 2>&1) || { fail "${3:-ndjson}: expected is not NDJSON: $e"; return 1; }
    if [ "$a" != "$e" ]; then
        fail "${3:-ndjson}: differs from expected (- expected, + actual), $(printf '%s' "$e" | grep -c .) vs $(printf '%s' "$a" | grep -c .) lines:"
        diff -u <(printf '%s\n' "$e") <(printf '%s\n' "$a") | tail -n +3 | head -n 60 >&2
        return 1
    fi
}

# ---- collectors ----

_tt_alive() {
    # A zombie still answers kill -0; look at the state letter instead.
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _tt_launch DIR [extra collect args]: start a collector using DIR/tt.db.
# With TT_RAW=1 only the given args are passed (a config file must then set
# listen, db and port_file = DIR/port).
_tt_launch() {
    local dir=$1
    shift
    rm -f "$dir/port"
    TT_N=$(( ${TT_N:-0} + 1 ))
    local log="$dir/collector.$TT_N.log"
    local base=(--listen 127.0.0.1:0 --db "$dir/tt.db" --port-file "$dir/port")
    [ "${TT_RAW:-0}" = 1 ] && base=()
    "$TT_BIN" collect "${base[@]}" "$@" </dev/null >>"$log" 2>&1 &
    TT_PID=$!
    TT_PIDS+=("$TT_PID")
    echo "$TT_PID" >>"$TT_TMP/pids"
    TT_DIR=$dir
    TT_DB=$dir/tt.db
    TT_LOG=$log
    local deadline=$((SECONDS + TT_START_TIMEOUT)) n=0
    while [ ! -s "$dir/port" ]; do
        if ! _tt_alive "$TT_PID"; then
            wait "$TT_PID"
            local rc=$?
            fail "collector exited ($rc) before listening; log:"
            sed 's/^/    /' "$log" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "collector wrote no port file within ${TT_START_TIMEOUT}s"
            return 1
        fi
        n=$((n + 1))
        sleep 0.02
    done
    TT_PORT=$(cat "$dir/port")
    TT_SCHEME=http
    case " $* " in *" --tls-cert "*) TT_SCHEME=https ;; esac
    TT_URL=$TT_SCHEME://127.0.0.1:$TT_PORT
    export TT_URL TT_DB TT_PID TT_DIR TT_LOG TT_PORT
}

# tt_start [extra collect args]: a collector in a fresh directory, on
# 127.0.0.1:<free port>. Exports TT_URL, TT_DB, TT_PID, TT_DIR, TT_LOG.
# Returns non-zero (after reporting) when it does not come up.
tt_start() {
    local dir
    dir=$(mktemp -d "$TT_TMP/collector.XXXX")
    _tt_launch "$dir" "$@"
}

# tt_newdir: a fresh collector directory in TT_DIR (for tt_start_raw).
tt_newdir() {
    TT_DIR=$(mktemp -d "$TT_TMP/collector.XXXX")
}

# tt_start_raw [collect args]: start in TT_DIR with only the given args; they
# (or the config file they name) must set port_file to $TT_DIR/port.
tt_start_raw() {
    TT_RAW=1 _tt_launch "$TT_DIR" "$@"
}

# tt_restart [extra collect args]: a new collector on the same TT_DIR and DB
# (after tt_stop or a kill); it gets a new port.
tt_restart() {
    _tt_launch "$TT_DIR" "$@"
}

# tt_wait_exit PID TIMEOUT: wait for PID (a child of this shell) to exit and
# set TT_WAIT_RC to its exit status. Returns 1 if it is still running after
# TIMEOUT seconds. Do not call it in $(...): a subshell cannot reap it.
tt_wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while _tt_alive "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null
    TT_WAIT_RC=$?
}

_tt_forget() {
    local keep=() p
    for p in "${TT_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    TT_PIDS=("${keep[@]}")
}

# tt_stop [PID]: SIGTERM the collector (default TT_PID) and wait up to 15 s;
# then SIGKILL it and fail. Sets and returns TT_RC, the exit status.
tt_stop() {
    local pid=${1:-$TT_PID} rc
    kill -TERM "$pid" 2>/dev/null
    if tt_wait_exit "$pid" "$TT_STOP_TIMEOUT"; then
        rc=$TT_WAIT_RC
    else
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        fail "collector $pid still running ${TT_STOP_TIMEOUT}s after SIGTERM; killed"
        rc=137
    fi
    _tt_forget "$pid"
    TT_RC=$rc
    return "$rc"
}

# tt_kill9 [PID]: crash the collector; waits until it is gone.
tt_kill9() {
    local pid=${1:-$TT_PID}
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    _tt_forget "$pid"
}

_tt_cleanup() {
    local rc=$? p
    for p in "${TT_PIDS[@]}"; do
        if _tt_alive "$p"; then
            kill -TERM "$p" 2>/dev/null
            tt_wait_exit "$p" 5 || kill -KILL "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
    done
    TT_PIDS=()
    if [ "$rc" -eq 0 ] && [ -s "$TT_TMP/failures" ]; then
        rc=1
    fi
    exit "$rc"
}
trap _tt_cleanup EXIT
trap 'fail "interrupted"; exit 130' INT TERM

# ---- HTTP ----

# tt_curl [curl args]: curl with the test defaults (quiet, bounded time).
tt_curl() {
    curl -sS --max-time 60 "$@"
}

# tt_post FILE [curl args]: POST FILE's bytes to $TT_URL/v1/events.
# Content-Type defaults to application/x-ndjson unless the args set one.
# Sets STATUS (HTTP code, 000 on connection failure) and BODY.
tt_post() {
    local file=$1 ct=1 a
    shift
    for a in "$@"; do
        case $a in [Cc]ontent-[Tt]ype:*) ct=0 ;; esac
    done
    local hdr=()
    [ "$ct" -eq 1 ] && hdr=(-H 'Content-Type: application/x-ndjson')
    local out="$TT_TMP/post.body"
    rm -f "$out"
    STATUS=$(curl -s --max-time 60 -o "$out" -w '%{http_code}' -X POST "${hdr[@]}" \
        --data-binary "@$file" "$@" "$TT_URL/v1/events")
    BODY=$(cat "$out" 2>/dev/null)
}

# tt_post_str STRING [curl args]: like tt_post with the body given inline.
tt_post_str() {
    local f="$TT_TMP/post.req"
    printf '%s' "$1" >"$f"
    shift
    tt_post "$f" "$@"
}

# tt_get PATH [curl args]: GET $TT_URL/PATH; sets STATUS and BODY.
tt_get() {
    local path=$1 out="$TT_TMP/get.body"
    shift
    rm -f "$out"
    STATUS=$(curl -s --max-time 30 -o "$out" -w '%{http_code}' "$@" "$TT_URL$path")
    BODY=$(cat "$out" 2>/dev/null)
}

# tt_events [filters]: `tokentrail events --format json` on TT_DB (NDJSON).
tt_events() {
    "$TT_CLI" events --db "$TT_DB" --format json "$@"
}

# tt_metric NAME_WITH_LABELS: the value of one sample from /metrics, e.g.
# tt_metric 'tokentrail_events_accepted_total{type="token.issued"}'
tt_metric() {
    curl -s --max-time 10 "$TT_URL/metrics" | awk -v k="$1" '$1 == k { print $2; found=1 } END { if (!found) print "absent" }'
}

# tt_fingerprint STRING: sha256:<hex> of the exact bytes of STRING.
tt_fingerprint() {
    printf 'sha256:%s\n' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"
}

# tt_rss_kib PID: resident set size in KiB.
tt_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# An event line for tests: tt_ev_issued ID [SOURCE] [TOKEN] [TIME].
tt_ev_issued() {
    local id=$1 src=${2:-as} tok=${3:-tok-$1} t=${4:-2026-11-22T07:00:00Z}
    printf '{"specversion":"1.0","id":"%s","source":"%s","type":"token.issued","time":"%s","data":{"token":"%s","client_id":"oncall-cli","subject":"alice","scopes":"db:orders:read","issued_at":"%s","expires_at":"2026-11-22T08:00:00Z"}}\n' \
        "$id" "$src" "$t" "$tok" "$t"
}

# tt_done: end of a test; the exit status is decided by the failures seen.
tt_done() {
    exit 0
}
