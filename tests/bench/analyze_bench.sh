#!/usr/bin/env bash
# analyze_bench.sh - benchmark of `tokentrail analyze --once` over a generated
# store (default 5,000,000 events, about 1,000,000 tokens; all tokens stay in
# memory: the bench policy keeps ended tokens for 30 days). Prints events/s,
# peak RSS and bytes per token. Not a test: it asserts nothing.
# Usage: tests/bench/analyze_bench.sh [EVENTS]   Env: TT_BENCH_DIR (scratch, kept)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-5000000}
DIR=${TT_BENCH_DIR:-/tmp/tt-analyze-bench}
BIN=$ROOT/bin/tokentrail
mkdir -p "$DIR"
DB=$DIR/events-$N.db
if [ ! -s "$DB" ]; then
    echo "generating $N events into $DB ..."
    t0=$(date +%s)
    python3 "$ROOT/tests/bench/analyze_gen.py" "$DB.tmp" "$N" "$DIR/policy.yaml"
    mv "$DB.tmp" "$DB"
    echo "generated in $(( $(date +%s) - t0 )) s"
fi
run() { # label extra-args
    local label=$1
    shift
    local work=$DIR/run.db
    cp "$DB" "$work"
    rm -f "$work-wal" "$work-shm"
    # flush the copy first: otherwise the run's first fsync writes back the
    # whole multi-GB copy and the figure measures the disk, not the analyzer
    sync
    uptime | sed 's/.*load/  load/'
    /usr/bin/time -f '%e %M' -o "$DIR/time" "$BIN" analyze --db "$work" --policy "$DIR/policy.yaml" \
        --once --format json --as-of 2026-11-22T07:00:00Z "$@" >"$DIR/findings.ndjson" 2>"$DIR/log" || true
    read -r secs kib < <(tail -n 1 "$DIR/time")
    local findings
    findings=$(grep -c . "$DIR/findings.ndjson" || true)
    local tokens=$((N / 5))
    awk -v n="$N" -v s="$secs" -v k="$kib" -v t="$tokens" -v f="$findings" -v l="$label" 'BEGIN {
        printf "%-28s %9d events in %6.2f s = %8.0f events/s; peak RSS %6.0f MiB = %4.0f bytes/token (%d tokens); %d findings\n",
            l, n, s, n / s, k / 1024, k * 1024 / t, t, f }'
    rm -f "$work" "$work-wal" "$work-shm"
}
run "analyze --once (total)"
grep -E "analysed|state:" "$DIR/log" | sed 's/^/  /'
