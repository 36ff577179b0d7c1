#!/usr/bin/env bash
# drill_bench.sh - how exactly does `tokentrail drill` time revocation, and how
# many simulated engineers does one core carry? Runs drills against
# drill_bench_server (tests/bench/drill_bench_server.c), which switches each
# token from accepted to refused at a CLOCK_MONOTONIC instant it records, and
# the instant it received the first refused probe. Per revoked token:
#   error      = harness's first-refusal instant - true switch instant
#                (includes the probe-interval quantisation: 0..interval)
#   stamp err  = server's receipt of that probe - harness's stamp of it
#                (the harness's own timing error: loop lateness + send path)
# Prints p50/p99 of both at a 10 ms probe interval, for growing engineer
# counts, and the largest count whose stamp error p99 stays under 5 ms with
# the drill pinned to one core (taskset).
#
# Usage: tests/bench/drill_bench.sh [ENGINEER_COUNTS...]   (default 50 200 500 1000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TT_BIN:-$ROOT/bin/tokentrail}
WORK=$(mktemp -d /tmp/tt-drill-bench.XXXXXX)
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(50 200 500 1000)
ITER=${DRILL_BENCH_ITERATIONS:-5}

cc -O2 -Wall -o "$WORK/server" "$ROOT/tests/bench/drill_bench_server.c"
SERVER_PID=
cleanup() { [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

ncpu=$(nproc)
DRILL_CPU=0
SERVER_CPU=$((ncpu > 1 ? 1 : 0))

printf '%-9s %-8s %-10s %-10s %-13s %-13s %-9s %s\n' engineers probes err_p50 err_p99 stamp_err_p50 stamp_err_p99 errors verdict
best=0
for n in "${COUNTS[@]}"; do
    # a fresh server per run so token numbers start at 0
    rm -f "$WORK/port"
    taskset -c "$SERVER_CPU" "$WORK/server" "$WORK/port" 20 100 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do [ -s "$WORK/port" ] && break; sleep 0.05; done
    PORT=$(cat "$WORK/port")
    cat >"$WORK/bench.yaml" <<YAML
name: bench-$n
authorization_server:
  token_endpoint: http://127.0.0.1:$PORT/token
  revocation_endpoint: http://127.0.0.1:$PORT/revoke
client:
  client_id: bench
  client_secret_env: DRILL_BENCH_SECRET
grant:
  scope: a
resource_servers:
  - name: rs
    url: http://127.0.0.1:$PORT/rs
end: revoke
load:
  engineers: $n
  iterations: $ITER
  probe_interval: 10ms
  probe_timeout: 2s
  ramp: 1s
thresholds:
  lingering: ["count == 0"]
YAML
    DRILL_BENCH_SECRET=bench taskset -c "$DRILL_CPU" "$BIN" drill run -q "$WORK/bench.yaml" \
        --out "$WORK/out-$n" >"$WORK/drill-$n.log" 2>&1 || true
    curl -s --noproxy '*' "http://127.0.0.1:$PORT/dump" >"$WORK/dump-$n.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    line=$(python3 - "$WORK/out-$n/report.json" "$WORK/dump-$n.txt" "$n" <<'PY'
import hashlib, json, sys
rep = json.load(open(sys.argv[1]))
base = rep["mono_base_ns"]
truth = {}
for l in open(sys.argv[2]):
    i, sw, rx = map(int, l.split())
    truth["sha256:" + hashlib.sha256(f"tok{i}".encode()).hexdigest()] = (sw, rx)
err, stamp, probes, errors = [], [], 0, 0
for it in rep["iterations"]:
    if it["error"]:
        errors += 1
        continue
    o = it["resource_servers"]["rs"]
    probes += o["probes"]
    t = truth.get(it["token_id"])
    if t is None or o["refused_ms"] is None:
        errors += 1
        continue
    ref = base + round(o["refused_ms"] * 1e6)
    err.append((ref - t[0]) / 1e6)
    stamp.append((t[1] - ref) / 1e6)
def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    r = p / 100 * (len(v) - 1)
    lo = int(r)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (r - lo)
ok = errors == 0 and pct(stamp, 99) < 5 and pct(err, 99) < 15
print(f"{sys.argv[3]:<9} {probes:<8} {pct(err,50):<10.2f} {pct(err,99):<10.2f} "
      f"{pct(stamp,50):<13.3f} {pct(stamp,99):<13.3f} {errors:<9} {'ok' if ok else 'over'}")
PY
)
    echo "$line"
    case $line in *" ok") best=$n ;; esac
done
echo "drill bench: probe interval 10 ms, ${ITER} iterations per engineer, drill pinned to cpu $DRILL_CPU, server on cpu $SERVER_CPU"
echo "drill bench: largest engineer count with stamp error p99 < 5 ms and no errors: $best"
