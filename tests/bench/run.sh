#!/usr/bin/env bash
# run.sh - `make bench`: load the collector (SQLite store, durable) over
# loopback with wrk, in NDJSON batches of 1000 events and as single-event
# requests over keep-alive; then the component micro-benchmark. Prints the
# figures and writes them into docs/performance.md between the BENCH markers.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-15}
BATCH_CONNS=${BENCH_BATCH_CONNS:-8}
SINGLE_CONNS=${BENCH_SINGLE_CONNS:-128}
DIR=build/bench
mkdir -p "$DIR"
command -v wrk >/dev/null || { echo "bench: wrk is missing: run make deps" >&2; exit 2; }
make -s bin/tokentrail build/rel/tt_micro

PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; true; }
trap cleanup EXIT

start() {
  rm -f "$DIR"/bench.db* "$DIR/port"
  bin/tokentrail collect --listen 127.0.0.1:0 --db "$DIR/bench.db" --port-file "$DIR/port" \
    --log-level warn 2>"$DIR/collect.log" &
  PID=$!
  for _ in $(seq 100); do [ -s "$DIR/port" ] && break; sleep 0.05; done
  PORT=$(cat "$DIR/port")
}
stop() { kill "$PID"; wait "$PID"; PID=""; }
stored() { sqlite3 "$DIR/bench.db" "select count(*) from events"; }

# wrk's text output -> "requests seconds rps p50 p99 errors"
parse_wrk() {
  awk '
    / requests in /      { req=$1; sec=$4; sub(/s,/, "", sec) }
    /Requests\/sec:/     { rps=$2 }
    /^ +50%/             { p50=$2 }
    /^ +99%/             { p99=$2 }
    /Non-2xx/            { bad=$NF }
    /Socket errors/      { bad=bad "+sock" }
    END { print req, sec, rps, p50, p99, (bad==""?0:bad) }'
}

echo "bench: batches of 1000 events, $BATCH_CONNS connections, ${DURATION}s"
start
wrk -t1 -c"$BATCH_CONNS" -d2s -s tests/bench/batch.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1
base=$(stored)
wrk -t1 -c"$BATCH_CONNS" -d"${DURATION}s" --latency -s tests/bench/batch.lua \
  "http://127.0.0.1:$PORT" > "$DIR/batch.txt" 2>&1
if grep -q "unexpected response" "$DIR/batch.txt"; then
  echo "bench: unexpected responses (duplicates or rejections):" >&2; grep -m3 "unexpected" "$DIR/batch.txt" >&2; exit 1
fi
read -r b_req b_sec b_rps b_p50 b_p99 b_bad < <(parse_wrk < "$DIR/batch.txt")
b_stored=$(( $(stored) - base ))
commits=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokentrail_store_commits_total/ {print $2}')
stop
b_eps=$(awk -v n="$b_stored" -v s="$b_sec" 'BEGIN { printf "%.0f", n / s }')
echo "  $b_req requests, $b_stored events stored in ${b_sec}s: $b_eps events/s, p50 $b_p50, p99 $b_p99, non-2xx $b_bad"

echo "bench: single-event requests, $SINGLE_CONNS keep-alive connections, ${DURATION}s"
start
wrk -t1 -c"$SINGLE_CONNS" -d2s -s tests/bench/single.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1
base=$(stored)
wrk -t1 -c"$SINGLE_CONNS" -d"${DURATION}s" --latency -s tests/bench/single.lua \
  "http://127.0.0.1:$PORT" > "$DIR/single.txt" 2>&1
if grep -q "unexpected response" "$DIR/single.txt"; then
  echo "bench: unexpected responses (duplicates or rejections):" >&2; grep -m3 "unexpected" "$DIR/single.txt" >&2; exit 1
fi
read -r s_req s_sec s_rps s_p50 s_p99 s_bad < <(parse_wrk < "$DIR/single.txt")
s_stored=$(( $(stored) - base ))
s_commits=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokentrail_store_commits_total/ {print $2}')
stop
echo "  $s_req requests ($s_rps req/s), $s_stored events stored, p50 $s_p50, p99 $s_p99, non-2xx $s_bad, $s_commits commits"

echo "bench: component costs"
build/rel/tt_micro 30 "$DIR/micro.db" | tee "$DIR/micro.txt"

# The figures are only valid if every answered event was stored.
status=0
if [ "$b_bad" != "0" ] || [ "$s_bad" != "0" ]; then echo "bench: some requests failed" >&2; status=1; fi

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
table=$(cat <<TABLE
Measured $now on $(nproc) cores ($cpu), tokentrail $(cat VERSION), loopback, wrk and the collector on the same machine, SQLite store on $(df -T "$DIR" | awk 'NR==2 {print $2}'), WAL + synchronous=FULL.

| load | result | target |
|---|---|---|
| NDJSON batches of 1000 events (~450 B each), $BATCH_CONNS connections | **$b_eps events/s** durable ($b_stored events in ${b_sec}s), request p50 $b_p50, p99 $b_p99 | ≥ 100,000 events/s |
| single-event requests, keep-alive, $SINGLE_CONNS connections | **$s_rps requests/s**, p50 $s_p50, p99 $s_p99; $s_stored events in $s_commits group commits | ≥ 15,000 requests/s |

Component costs (\`build/rel/tt_micro\`, CPU time per event, one thread):

\`\`\`
$(cat "$DIR/micro.txt")
\`\`\`
TABLE
)
if [ -f docs/performance.md ] && grep -q '<!-- BENCH:BEGIN -->' docs/performance.md; then
  python3 - "$table" <<'PY'
import sys, re
p = "docs/performance.md"
s = open(p).read()
s = re.sub(r"<!-- BENCH:BEGIN -->.*<!-- BENCH:END -->",
           "<!-- BENCH:BEGIN -->\n" + sys.argv[1].replace("\\", "\\\\") + "\n<!-- BENCH:END -->", s, flags=re.S)
open(p, "w").write(s)
PY
  echo "bench: figures written to docs/performance.md"
fi
exit $status
