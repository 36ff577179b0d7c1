#!/usr/bin/env bash
# drill_bench.sh - how exactly does `tokentrail drill` time revocation, and how
# many simulated engineers does one core carry? Runs drills against
# drill_bench_server (tests/bench/drill_bench_server.c), which switches each
# token from accepted to refused at a CLOCK_MONOTONIC instant S it records, and
# stamps every request's kernel arrival. Per revoked token (R = the harness's
# first-refusal instant, i.e. its stamp of the first refused probe):
#   error      = R - S. Includes the probe grid's quantisation (0..interval):
#                a probe every 10 ms cannot see a switch sooner than the next
#                tick. Not the harness's error; reported for completeness.
#   late       = R - G, G = the first tick of the probe grid (end of access +
#                k * interval) at or after S: what the harness adds to the
#                error beyond that quantisation (loop lateness, skipped ticks).
#   stamp err  = kernel arrival of a probe at the server - the harness's stamp
#                of it, for both probes that bracket the switch (last accepted,
#                first refused); p50/p99 of its absolute value.
#   end lag    = the harness's end-of-access stamp - the server's revocation
#                reply (propagation is measured from that stamp).
#   srv lag    = the server's own delay answering the last accepted probe
#                (arrival to reply): not the harness's, but when it exceeds
#                the interval the next tick finds that probe still in flight
#                and `late` grows - it tells a busy server core from a busy
#                harness core.
# A count is "ok" when there are no errors, late, stamp err and end lag
# all have p99 < 5 ms, and all its engineers were active at once (act_pk). Prints the load averages around every run: other
# processes on the same cores show up directly in these figures.
#
# Usage: tests/bench/drill_bench.sh [ENGINEER_COUNTS...]   (default 10 25 50 100 200 500)
# Env: DRILL_BENCH_ITERATIONS (30: iterations per engineer; with ~75 ms
#      iterations and the 1 s ramp every engineer is active at once for most of
#      the run, so a count is a count the core sustains, not a burst - the
#      "active" columns show the concurrency reached),
#      DRILL_BENCH_REPEAT (1: runs per count),
#      DRILL_BENCH_DELAY ("20 100": switch delay min and span, ms), TT_BIN,
#      DRILL_BENCH_SPIN_US (0: the server polls without sleeping this long
#      after its last request, so the drill's loopback send() does not pay for
#      waking it; on a shared machine it then answers late - see
#      drill_bench_server.c),
#      DRILL_BENCH_CEILING (1: afterwards measure, from the drill's core against
#      the same server, wrk's requests/s - the ceiling for any HTTP/1.1 client -
#      and curl_ceiling's - libcurl's multi interface doing nothing else, the
#      ceiling for the drill, which must use libcurl; 0: skip),
#      DRILL_BENCH_CEILING_SECS (5), DRILL_BENCH_CEILING_CONNS (100: the
#      clients' connections; wrk's best rate here, more connections only queue),
#      DRILL_BENCH_MAX_PRESSURE (e.g. 20: before each run wait, up to 120 s, until
#      the 10 s CPU pressure average - /proc/pressure/cpu "some avg10" - is below
#      it, so runs on a shared machine are compared at similar contention).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TT_BIN:-$ROOT/bin/tokentrail}
WORK=$(mktemp -d /tmp/tt-drill-bench.XXXXXX)
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(10 25 50 100 200 500)
ITER=${DRILL_BENCH_ITERATIONS:-30}
REPEAT=${DRILL_BENCH_REPEAT:-1}
read -r DELAY_MIN DELAY_SPAN <<<"${DRILL_BENCH_DELAY:-20 100}"

cc -O2 -Wall -o "$WORK/server" "$ROOT/tests/bench/drill_bench_server.c"
cc -O2 -Wall -o "$WORK/curl_ceiling" "$ROOT/tests/bench/curl_ceiling.c" -lcurl
cc -O2 -Wall -o "$WORK/wakeup_latency" "$ROOT/tests/bench/wakeup_latency.c"
SERVER_PID=
WAKE_PID=
cleanup() {
    [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
    [ -z "$WAKE_PID" ] || kill "$WAKE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

ncpu=$(nproc)
DRILL_CPU=0
SERVER_CPU=$((ncpu > 1 ? 1 : 0))

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
TIMEFORMAT='%U %S'
psi() { [ -r /proc/pressure/cpu ] && echo ", cpu pressure: $(head -1 /proc/pressure/cpu | cut -d' ' -f2-3)"; }
echo "drill bench: $(nproc) cpus, load average $(loadavg) at start$(psi)"
printf '%-6s %-6s %-7s %-7s %-7s %-7s %-7s %-8s %-8s %-7s %-7s %-6s %-5s %-7s %-7s %-6s %-6s %-6s %-7s %s\n' engrs probes \
    err_p50 err_p99 late50 late99 stamp50 stamp99 endlag99 probeiv srvlag99 us/req cpu% rq/s/eng self99 errors \
    act_pk act_av verdict load/psi
best=0
fails=" "
min_n=
per_eng=
# steal: the share of each cpu's time the hypervisor gave to other guests
# (/proc/stat); a stolen slice stalls the drill or the server outright
cpu_steal() { awk -v a="cpu$DRILL_CPU" -v b="cpu$SERVER_CPU" '$1 == a || $1 == b {
    t = 0; for (i = 2; i <= 9; i++) t += $i; printf "%s %d %d ", $1, $9, t }' /proc/stat; }
steal_pct() {
    awk -v x="$1" -v y="$2" 'BEGIN { n = split(x, a, " "); split(y, b, " ")
        for (i = 1; i + 2 <= n; i += 3) { d = b[i + 2] - a[i + 2]; p = 0
            if (d > 0) p = 100 * (b[i + 1] - a[i + 1]) / d
            printf "%s%s:%.0f%%", (i == 1 ? "" : ","), a[i], p } }'
}
# start_server SPIN_US: the bench server on SERVER_CPU; sets SERVER_PID, PORT
start_server() {
    rm -f "$WORK/port"
    taskset -c "$SERVER_CPU" "$WORK/server" "$WORK/port" "$DELAY_MIN" "$DELAY_SPAN" "$1" &
    SERVER_PID=$!
    for _ in $(seq 1 50); do [ -s "$WORK/port" ] && break; sleep 0.05; done
    PORT=$(cat "$WORK/port")
}
pressure() { sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo 0; }
wait_quiet() {
    [ -n "${DRILL_BENCH_MAX_PRESSURE:-}" ] || return 0
    local i
    for i in $(seq 1 240); do
        awk -v p="$(pressure)" -v m="$DRILL_BENCH_MAX_PRESSURE" 'BEGIN { exit !(p < m) }' && return 0
        sleep 0.5
    done
}
for n in $(for c in "${COUNTS[@]}"; do for _ in $(seq 1 "$REPEAT"); do echo "$c"; done; done); do
    wait_quiet
    # a fresh server per run so token numbers start at 0
    start_server "${DRILL_BENCH_SPIN_US:-0}"
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
    # the floor: how late an idle SCHED_FIFO thread on the drill's cpu wakes
    # meanwhile (wakeup_latency.c): lateness the drill cannot be blamed for
    taskset -c "$DRILL_CPU" "$WORK/wakeup_latency" 3600 >"$WORK/wake-$n.txt" &
    WAKE_PID=$!
    steal0=$(cpu_steal)
    t0=$(date +%s%N)
    { time DRILL_BENCH_SECRET=bench taskset -c "$DRILL_CPU" "$BIN" drill run -q "$WORK/bench.yaml" \
        --out "$WORK/out-$n" >"$WORK/drill-$n.log" 2>&1 || true; } 2>"$WORK/cpu-$n.txt"
    t1=$(date +%s%N)
    steal1=$(cpu_steal)
    kill -TERM "$WAKE_PID"; wait "$WAKE_PID" 2>/dev/null || true; WAKE_PID=
    read -r wake99 wakemax <<<"$(sed -n 's/.* p99_us=\([0-9]*\) .* max_us=\([0-9]*\) .*/\1 \2/p' "$WORK/wake-$n.txt" |
        awk '{ printf "%.2f %.1f", $1 / 1000, $2 / 1000 }')"
    curl -s --noproxy '*' "http://127.0.0.1:$PORT/dump" >"$WORK/dump-$n.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    line=$(python3 - "$WORK/out-$n/report.json" "$WORK/dump-$n.txt" "$n" "$(cat "$WORK/cpu-$n.txt")" \
        "$(( (t1 - t0) / 1000 ))" <<'PY'
import hashlib, json, math, sys
rep = json.load(open(sys.argv[1]))
base = rep["mono_base_ns"]
iv = 10.0  # ms, as in the scenario
truth = {}
for l in open(sys.argv[2]):
    i, sw, rx, acc, rtx, atx = map(int, l.split())
    truth["sha256:" + hashlib.sha256(f"tok{i}".encode()).hexdigest()] = (sw, rx, acc, rtx, atx)
ms = lambda ns: ns / 1e6
err, late, stamp, endlag, spacing, srvlag, probes, errors = [], [], [], [], [], [], 0, 0
for it in rep["iterations"]:
    if it["error"]:
        errors += 1
        continue
    o = it["resource_servers"]["rs"]
    probes += o["probes"]
    t = truth.get(it["token_id"])
    if t is None or o["refused_ms"] is None or not t[1]:
        errors += 1
        continue
    sw, rx, acc, rtx, atx = (ms(x - base) if x else None for x in t)
    r, end = o["refused_ms"], it["end_ms"]
    err.append(r - sw)
    g = end + max(0, math.ceil((sw - end) / iv - 1e-9)) * iv
    late.append(r - g)
    stamp.append(abs(rx - r))
    if acc is not None and o["last_accept_ms"] is not None:
        stamp.append(abs(acc - o["last_accept_ms"]))
        spacing.append(r - o["last_accept_ms"])
        srvlag.append(atx - acc)
    if rtx is not None:
        endlag.append(end - rtx)
def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    r = p / 100 * (len(v) - 1)
    lo = int(r)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (r - lo)
# engineers active at once: iterations in progress (an engineer's iterations
# run back to back), the peak and the time-weighted mean over the run
spans = [(it["opened_ms"], it["done_ms"]) for it in rep["iterations"]
         if it.get("opened_ms") is not None and it.get("done_ms") is not None]
edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
active = peak = 0
area = 0.0
for k, (t, d) in enumerate(edges):
    if k:
        area += active * (t - edges[k - 1][0])
    active += d
    peak = max(peak, active)
span = edges[-1][0] - edges[0][0] if edges else 0
act_avg = area / span if span > 0 else 0
# a count passes only if that many engineers actually ran at once
ok = (errors == 0 and all(pct(x, 99) < 5 for x in (late, stamp, endlag))
      and peak >= int(sys.argv[3]))
# one engineer's request rate while it runs iterations: requests per iteration
# over the mean iteration time (offered load per engineer when not throttled)
its = [it for it in rep["iterations"] if not it["error"]]
per_eng = (sum(it["resource_servers"]["rs"]["probes"] + 3 for it in its)
           / max(sum(it["done_ms"] - it["opened_ms"] for it in its), 1e-9) * 1000)
# the harness's own account of its lateness (report.json: how long after its
# tick the refusing probe went out), to set beside the measured `late`
self_late = [it["resource_servers"]["rs"]["refusal_late_ms"] for it in its
             if it["resource_servers"]["rs"].get("refusal_late_ms") is not None]
# the drill's CPU time (whole process: setup and reports too) per HTTP request
# (token, first use, revocation, probes) and its share of the wall-clock time
cpu = sum(float(x) for x in sys.argv[4].split())
nreq = probes + 3 * len(rep["iterations"])
us_req = cpu * 1e6 / max(nreq, 1)
busy = cpu * 1e6 / max(int(sys.argv[5]), 1) * 100
print(f"{sys.argv[3]:<6} {probes:<6} {pct(err,50):<7.2f} {pct(err,99):<7.2f} "
      f"{pct(late,50):<7.2f} {pct(late,99):<7.2f} {pct(stamp,50):<7.3f} {pct(stamp,99):<8.3f} "
      f"{pct(endlag,99):<8.2f} {pct(spacing,99):<7.2f} {pct(srvlag,99):<7.2f} {us_req:<6.1f} "
      f"{busy:<5.0f} {per_eng:<7.1f} {pct(self_late,99):<7.2f} {errors:<6} "
      f"{peak:<6} {act_avg:<6.0f} {'ok' if ok else 'over'}")
PY
)
    echo "$line    $(loadavg) psi=$(pressure) steal=$(steal_pct "$steal0" "$steal1") wake99=${wake99:-?} wakemax=${wakemax:-?}"
    # offered load per engineer, from the least loaded run (the least throttled)
    [ -n "$min_n" ] && [ "$n" -ge "$min_n" ] || { min_n=$n; per_eng=$(awk '{print $14}' <<<"$line"); }
    case $line in *" ok") ;; *) fails="$fails$n " ;; esac
done
# A fresh bench server for a ceiling run, with token tok0 issued (accepted
# for good: it is never revoked); sets SERVER_PID, PORT and conns.
ceiling_server() {
    start_server 0
    curl -s --noproxy '*' -X POST "http://127.0.0.1:$PORT/token" >/dev/null
    wait_quiet
    conns=${DRILL_BENCH_CEILING_CONNS:-100}
}
# The ceiling: how many requests/s a lean HTTP/1.1 client (wrk, one thread,
# keep-alive, no libcurl) gets from one core against the same server, as kcat is
# the ceiling for the Kafka bench. No client can carry more engineers on that
# core than ceiling / (one engineer's request rate).
ceiling=
wrk_us=
if [ "${DRILL_BENCH_CEILING:-1}" != 0 ] && command -v wrk >/dev/null; then
    ceiling_server
    { time taskset -c "$DRILL_CPU" wrk -t1 -c"$conns" -d"${DRILL_BENCH_CEILING_SECS:-5}s" \
        -H 'Authorization: Bearer tok0' "http://127.0.0.1:$PORT/rs" >"$WORK/wrk.txt"; } 2>"$WORK/wrk-cpu.txt"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    ceiling=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk.txt")
    total=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    # wrk's CPU per request: almost all of it is the kernel's loopback TCP work,
    # which any client on this core pays
    read -r wrk_us wrk_sys <<<"$(awk -v n="${total:-0}" '{ if (n > 0) printf "%.1f %.1f", ($1 + $2) * 1e6 / n, $2 * 1e6 / n; else print "? ?" }' "$WORK/wrk-cpu.txt")"
    echo "drill bench: ceiling: wrk -t1 -c$conns pinned to cpu $DRILL_CPU against the same server: ${ceiling:-?} requests/s, wrk CPU $wrk_us us/request ($wrk_sys us of it in the kernel)"
fi
# The libcurl ceiling: the drill must send its HTTP through libcurl's multi
# interface; curl_ceiling.c is that interface re-adding kept-alive GETs and
# doing nothing else, the most any libcurl-based harness gets from this core.
curl_ceiling=
if [ "${DRILL_BENCH_CEILING:-1}" != 0 ]; then
    ceiling_server
    taskset -c "$DRILL_CPU" "$WORK/curl_ceiling" "http://127.0.0.1:$PORT/rs" "$conns" \
        "${DRILL_BENCH_CEILING_SECS:-5}" 'Authorization: Bearer tok0' >"$WORK/curl.txt" || true
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    read -r curl_ceiling curl_user curl_sys curl_err <<<"$(sed -n 's/^requests=\([0-9]*\) secs=\([0-9.]*\) user_us_per_req=\([0-9.]*\) sys_us_per_req=\([0-9.]*\) errors=\([0-9]*\)$/\1 \2 \3 \4 \5/p' "$WORK/curl.txt" |
        awk '{ printf "%.0f %s %s %s", $1 / $2, $3, $4, $5 }')"
    if [ -n "$curl_ceiling" ]; then
        echo "drill bench: libcurl ceiling: curl_ceiling (multi interface, $conns kept-alive handles, nothing else) pinned to cpu $DRILL_CPU: $curl_ceiling requests/s, $curl_user us user + $curl_sys us kernel per request, $curl_err errors"
    else
        echo "drill bench: libcurl ceiling: curl_ceiling failed: $(cat "$WORK/curl.txt")"
    fi
fi
if [ -n "$per_eng" ]; then
    echo "drill bench: one engineer offers $per_eng requests/s (requests per iteration / mean iteration time, at $min_n engineers)"
    for c in "${COUNTS[@]}"; do
        awk -v c="$c" -v r="$per_eng" -v ceil="${ceiling:-0}" -v cc="${curl_ceiling:-0}" -v us="${wrk_us:-0}" 'BEGIN {
            printf "drill bench:   %5d engineers offer %6.0f requests/s", c, c * r
            if (ceil > 0) printf " = %3.0f %% of the wrk ceiling", 100 * c * r / ceil
            if (cc > 0) printf ", %3.0f %% of the libcurl ceiling", 100 * c * r / cc
            if (us + 0 > 0) printf "; at wrk'"'"'s cost per request that is %3.0f %% of a core", c * r * us / 1e4
            printf "\n" }'
    done
fi
for c in "${COUNTS[@]}"; do
    case $fails in *" $c "*) ;; *) [ "$c" -le "$best" ] || best=$c ;; esac
done
echo "drill bench: probe interval 10 ms, ${ITER} iterations per engineer, switch ${DELAY_MIN}-$((DELAY_MIN + DELAY_SPAN)) ms after the revocation, drill pinned to cpu $DRILL_CPU, server on cpu $SERVER_CPU (spins ${DRILL_BENCH_SPIN_US:-0} us before sleeping)"
echo "drill bench: load average $(loadavg) at the end$(psi)"
echo "drill bench: columns in ms; probeiv = p99 of (first refused - last accepted probe), the bracket the"
echo "             switch lies in; srvlag99 = p99 server delay answering the last accepted probe;"
echo "             us/req = drill CPU time per HTTP request; cpu% = drill CPU / wall time;"
echo "             rq/s/eng = one engineer's requests/s; self99 = p99 of the drill's own report of"
echo "             how late the refusing probe went out (report.json refusal_late_ms);"
echo "             act_pk / act_av = engineers active at once, peak / time-weighted mean;"
echo "             steal = share of the drill's and the server's cpu taken by the hypervisor;"
echo "             wake99 / wakemax = p99 / max ms an idle SCHED_FIFO thread on the drill's cpu woke"
echo "             late during the run (wakeup_latency.c): the machine's floor under late99"
echo "drill bench: largest engineer count with late, stamp err and end lag p99 < 5 ms in every run, no errors and all engineers active at once: $best"
