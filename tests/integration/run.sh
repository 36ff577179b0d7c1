#!/usr/bin/env bash
# run.sh - the integration test driver: every data-file case under cases/
# and every t_*.sh script, one test each, one line each, then the summary
# line `integration: N passed, M failed` that `make test` reads.
#
# Usage: tests/integration/run.sh [NAME-SUBSTRING ...]
# Env:   TT_BIN, TT_ASAN_BIN (binaries), TT_KEEP=1 (keep scratch dirs),
#        TT_VERBOSE=1 (print every test's log), TT_TEST_TIMEOUT (s, default 150).
set -u
IDIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$IDIR/../.." && pwd)
cd "$ROOT" || exit 2

export TT_BIN=${TT_BIN:-$ROOT/bin/tokentrail}
export TT_CLI=${TT_CLI:-$ROOT/bin/tokentrail}
export TT_ASAN_BIN=${TT_ASAN_BIN:-$ROOT/build/asan/tokentrail}
timeout_s=${TT_TEST_TIMEOUT:-150}

passed=0
failed=0
t_all=$(date +%s%N)
work=$(mktemp -d /tmp/tt-integration.XXXXXX)

for bin in "$TT_BIN" "$TT_CLI"; do
    if [ ! -x "$bin" ]; then
        echo "FAIL setup ($bin is missing: run make bin/tokentrail build/asan/tokentrail)"
        echo "integration: 0 passed, 1 failed"
        exit 1
    fi
done

selected() {
    [ $# -eq 1 ] && return 0
    local name=$1 pat
    shift
    for pat in "$@"; do
        case $name in *"$pat"*) return 0 ;; esac
    done
    return 1
}

# Stop collectors a test left behind (it timed out or was killed): only the
# PIDs it recorded, and only if they still are tokentrail.
reap() {
    local pidfile=$1/pids p
    [ -f "$pidfile" ] || return 0
    while read -r p; do
        if grep -qa tokentrail "/proc/$p/cmdline" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
            echo "  (killed leftover collector $p)"
        fi
    done <"$pidfile"
}

run_one() {
    local name=$1
    shift
    local dir="$work/${name//\//_}"
    mkdir -p "$dir"
    local t0 t1 rc ms reason asserts
    t0=$(date +%s%N)
    TT_TMP=$dir timeout -k 5 "$timeout_s" "$@" >"$dir/log" 2>&1
    rc=$?
    t1=$(date +%s%N)
    reap "$dir" >>"$dir/log"
    ms=$(((t1 - t0) / 1000000))
    asserts=$(wc -c <"$dir/asserts" 2>/dev/null || echo 0)
    reason=$(head -n 1 "$dir/failures" 2>/dev/null)
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        reason="timed out after ${timeout_s}s${reason:+; first failure: $reason}"
    elif [ "$rc" -ne 0 ] && [ -z "$reason" ]; then
        reason="exit status $rc"
    elif [ "$rc" -eq 0 ] && [ "$asserts" -eq 0 ]; then
        rc=1
        reason="made no assertions"
    fi
    local secs
    secs=$(printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)))
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name [${secs}s]"
        [ "${TT_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$dir/log"
        [ "${TT_KEEP:-0}" = 1 ] || rm -rf "$dir"
    else
        failed=$((failed + 1))
        echo "FAIL $name ($reason) [${secs}s]"
        sed 's/^/    /' "$dir/log" | tail -n "${TT_LOG_LINES:-40}"
        echo "    (scratch kept in $dir)"
    fi
}

for c in "$IDIR"/cases/*/; do
    [ -d "$c" ] || continue
    name=cases/$(basename "$c")
    selected "$name" "$@" || continue
    run_one "$name" bash "$IDIR/case.sh" "$c"
done
for t in "$IDIR"/t_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    selected "$name" "$@" || continue
    run_one "$name" bash "$t"
done

ms=$((($(date +%s%N) - t_all) / 1000000))
echo "total time: $((ms / 1000)).$((ms % 1000 / 100))s"
[ "${TT_KEEP:-0}" = 1 ] || [ "$failed" -gt 0 ] || rm -rf "$work"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
