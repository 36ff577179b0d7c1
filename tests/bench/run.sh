#!/usr/bin/env bash
# run.sh - `make bench`: load the collector (SQLite store, durable) over
# loopback in NDJSON batches of 1000 events and as single-event requests over
# keep-alive; then the component micro-benchmark. Prints the figures and
# writes them into docs/performance.md between the BENCH markers. Each load
# runs BENCH_RUNS times (default 2), each on a fresh collector and database.
#
# The load generator is tests/bench/loadgen.c (built here with cc -O2): one
# epoll thread that patches each event id in place, so it takes a few percent
# of a core instead of the collector's CPU. BENCH_CLIENT=wrk runs the older wrk
# + Lua scripts (batch.lua, single.lua) instead, for comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-15}
BATCH_CONNS=${BENCH_BATCH_CONNS:-8}
SINGLE_CONNS=${BENCH_SINGLE_CONNS:-128}
RUNS=${BENCH_RUNS:-2}
CLIENT=${BENCH_CLIENT:-loadgen}
DIR=build/bench
mkdir -p "$DIR"
make -s bin/tokentrail build/rel/tt_micro
case "$CLIENT" in
  loadgen) ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$DIR/loadgen" tests/bench/loadgen.c ;;
  wrk) command -v wrk >/dev/null || { echo "bench: wrk is missing: run make deps" >&2; exit 2; } ;;
  *) echo "bench: BENCH_CLIENT is loadgen or wrk" >&2; exit 2 ;;
esac

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
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# load EVENTS_PER_REQUEST CONNS SECONDS OUT: one run of the load generator;
# OUT gets "requests seconds rps p50 p99 bad" (latencies with units). The run
# fails on any non-2xx or a 2xx that did not accept every event.
load() {
  local n=$1 conns=$2 secs=$3 out=$4
  if [ "$CLIENT" = loadgen ]; then
    local rc=0
    "$DIR/loadgen" -p "$PORT" -c "$conns" -n "$n" -d "$secs" >"$out.raw" 2>"$out.err" || rc=$?
    awk -F= '{ v[$1] = $2 }
      END { print v["requests"], v["seconds"], v["rps"], v["p50_ms"] "ms", v["p99_ms"] "ms",
                  v["non2xx"] + v["sock_errors"] }' "$out.raw" >"$out"
    if [ "$rc" != 0 ]; then echo "bench: load generator failed:" >&2; cat "$out.err" >&2; exit 1; fi
  else
    local script=tests/bench/single.lua
    [ "$n" = 1 ] || script=tests/bench/batch.lua
    wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$script" "http://127.0.0.1:$PORT" >"$out.raw" 2>&1
    if grep -q "unexpected response" "$out.raw"; then
      echo "bench: unexpected responses (duplicates or rejections):" >&2
      grep -m3 "unexpected" "$out.raw" >&2; exit 1
    fi
    # wrk's text output -> "requests seconds rps p50 p99 errors"
    awk '
      / requests in /      { req=$1; sec=$4; sub(/s,/, "", sec) }
      /Requests\/sec:/     { rps=$2 }
      /^ +50%/             { p50=$2 }
      /^ +99%/             { p99=$2 }
      /Non-2xx/            { bad=$NF }
      /Socket errors/      { bad=bad "+sock" }
      END { print req, sec, rps, p50, p99, (bad==""?0:bad) }' "$out.raw" >"$out"
  fi
}

# run NAME EVENTS_PER_REQUEST CONNS: warm-up, then the timed run on a fresh
# collector; sets r_* (events counted from the rows actually stored).
run() {
  local name=$1 n=$2 conns=$3
  start
  load "$n" "$conns" 2 "$DIR/$name.warm"
  local base t0
  base=$(stored)
  t0=$(ticks "$PID")
  r_load0=$(cut -d' ' -f1 /proc/loadavg)
  load "$n" "$conns" "$DURATION" "$DIR/$name.txt"
  read -r r_req r_sec r_rps r_p50 r_p99 r_bad <"$DIR/$name.txt"
  r_load1=$(cut -d' ' -f1 /proc/loadavg)
  r_stored=$(( $(stored) - base ))
  r_cpu=$(awk -v a="$t0" -v b="$(ticks "$PID")" -v s="$r_sec" 'BEGIN { printf "%.2f", (b - a) / 100 / s }')
  r_commits=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^tokentrail_store_commits_total/ {print $2}')
  stop
  r_eps=$(awk -v n="$r_stored" -v s="$r_sec" 'BEGIN { printf "%.0f", n / s }')
}

rows=""
status=0
for i in $(seq "$RUNS"); do
  echo "bench: batches of 1000 events, $BATCH_CONNS connections, ${DURATION}s, $CLIENT (run $i of $RUNS)"
  run batch 1000 "$BATCH_CONNS"
  echo "  $r_req requests, $r_stored events stored in ${r_sec}s: $r_eps events/s, p50 $r_p50, p99 $r_p99, non-2xx $r_bad, collector $r_cpu cores, load $r_load0–$r_load1"
  [ "$r_bad" = 0 ] || status=1
  rows="$rows
| NDJSON batches of 1000 events (~450 B each), $BATCH_CONNS connections, run $i | **$r_eps events/s** durable ($r_stored events in ${r_sec}s), request p50 $r_p50, p99 $r_p99 | $r_cpu cores | $r_load0–$r_load1 | ≥ 100,000 events/s |"
done
for i in $(seq "$RUNS"); do
  echo "bench: single-event requests, $SINGLE_CONNS keep-alive connections, ${DURATION}s, $CLIENT (run $i of $RUNS)"
  run single 1 "$SINGLE_CONNS"
  echo "  $r_req requests ($r_rps req/s), $r_stored events stored, p50 $r_p50, p99 $r_p99, non-2xx $r_bad, $r_commits commits, collector $r_cpu cores, load $r_load0–$r_load1"
  [ "$r_bad" = 0 ] || status=1
  rows="$rows
| single-event requests, keep-alive, $SINGLE_CONNS connections, run $i | **$r_rps requests/s**, p50 $r_p50, p99 $r_p99; $r_stored events in $r_commits group commits | $r_cpu cores | $r_load0–$r_load1 | ≥ 15,000 requests/s |"
done

echo "bench: component costs"
build/rel/tt_micro 30 "$DIR/micro.db" | tee "$DIR/micro.txt"

# The figures are only valid if every answered event was stored.
if [ "$status" != 0 ]; then echo "bench: some requests failed" >&2; fi

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
table=$(cat <<TABLE
Measured $now on $(nproc) cores ($cpu), tokentrail $(cat VERSION), loopback, load generator ($CLIENT) and collector on the same machine, SQLite store on $(df -T "$DIR" | awk 'NR==2 {print $2}'), WAL + synchronous=FULL.

| load | result | collector CPU | load average (start–end) | target |
|---|---|---|---|---|$rows

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
