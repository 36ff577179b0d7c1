#!/usr/bin/env bash
# kafka_bench.sh - the collector's Kafka throughput against the bare
# librdkafka ceiling, in one run against the same local KRaft broker:
#   1. HTTP: the load generator (tests/bench/loadgen.c, as in run.sh) posts
#      NDJSON batches of 1000 events to `tokentrail collect --kafka-brokers`;
#      counted are events *delivered* (delivery report received, outbox row
#      deleted), including the drain after the load generator stops.
#   2. kcat: `kcat -P` produces the same number of equivalent events (same
#      size, same key, same headers, same producer settings) from a file.
#   3. the same collector without --kafka-brokers (embedded SQLite), same
#      load: the ingest work Kafka mode does before its Kafka share, an upper
#      bound for step 1 on this machine.
# Prints both rates, their ratio, delivery latency p50/p99 and the load
# average. Env: BENCH_DURATION (s, default 15), BENCH_BATCH_CONNS (8),
# KAFKA_JVM_OPTS (default: full JIT for throughput).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-15}
CONNS=${BENCH_BATCH_CONNS:-8}
DIR=build/bench/kafka
K=tests/kafka/kafka.sh
for tool in kcat java; do
  command -v "$tool" >/dev/null || { echo "kafka bench: $tool is missing: run make deps" >&2; exit 2; }
done
make -s bin/tokentrail
rm -rf "$DIR"
mkdir -p "$DIR"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$DIR/loadgen" tests/bench/loadgen.c

PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  "$K" stop "$DIR/broker" >/dev/null 2>&1 || true
}
trap cleanup EXIT

export KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=4}
PORT=$("$K" start "$DIR/broker" 2>"$DIR/kafka.sh.log")
BS=127.0.0.1:$PORT
for t in bench.http bench.kcat; do
  "$K" topics "$DIR/broker" --create --topic "$t" --partitions 3 --replication-factor 1 >/dev/null 2>&1
done
sleep 1

metric() { curl -s "http://127.0.0.1:$HPORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# metric_sum NAME: the sum over all label sets of a labelled counter
metric_sum() { curl -s "http://127.0.0.1:$HPORT/metrics" |
  awk -v k="$1" 'index($1, k "{") == 1 { n += $2 } END { printf "%.0f\n", n }'; }
# CPU time in clock ticks: the whole machine (user, nice, system, irq, softirq,
# steal; not idle or iowait) and one process (user + system).
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)
# us_per N TICKS: microseconds of CPU per event
us_per() { awk -v n="$1" -v t="$2" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }'; }
BROKER_PID=$(cat "$DIR/broker/kafka.pid")

# ---- 1. the collector over HTTP ----
bin/tokentrail collect --listen 127.0.0.1:0 --db "$DIR/bench.db" --port-file "$DIR/port" \
  --kafka-brokers "$BS" --kafka-topic bench.http --log-level warn 2>"$DIR/collect.log" &
PID=$!
for _ in $(seq 100); do [ -s "$DIR/port" ] && break; sleep 0.05; done
HPORT=$(cat "$DIR/port")
"$DIR/loadgen" -p "$HPORT" -c "$CONNS" -n 1000 -d 2 >/dev/null
until [ "$(metric tokentrail_outbox_events)" = 0 ]; do sleep 0.1; done
d0=$(metric tokentrail_kafka_delivered_total)
m0=$(busy); c0=$(ticks "$PID"); b0=$(ticks "$BROKER_PID")
t0=$(date +%s.%N)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
lg_rc=0
/usr/bin/time -f '%U %S' -o "$DIR/loadgen.cpu" \
  "$DIR/loadgen" -p "$HPORT" -c "$CONNS" -n 1000 -d "$DURATION" >"$DIR/loadgen.txt" \
  2>"$DIR/loadgen.err" || lg_rc=$?
t_http=$(date +%s.%N)
until [ "$(metric tokentrail_outbox_events)" = 0 ]; do sleep 0.05; done
t1=$(date +%s.%N)
m1=$(busy); c1=$(ticks "$PID"); b1=$(ticks "$BROKER_PID")
d1=$(metric tokentrail_kafka_delivered_total)
non2xx=$(awk -F= '$1 == "non2xx" || $1 == "sock_errors" { n += $2 } END { print n + 0 }' \
  "$DIR/loadgen.txt")
req_p99=$(awk -F= '$1 == "p99_ms" { print $2 " ms" }' "$DIR/loadgen.txt")
load1=$(cut -d' ' -f1-3 /proc/loadavg)
curl -s "http://127.0.0.1:$HPORT/metrics" >"$DIR/metrics.txt"
kill "$PID"; wait "$PID" || true; PID=""
n_http=$((d1 - d0))
# p50/p99 from the Prometheus histogram (linear within a bucket).
quant() {
  awk -v q="$1" -F'[ {}"=]+' '
    /^tokentrail_kafka_delivery_duration_seconds_bucket/ { le[n] = $3; c[n] = $NF; n++ }
    END {
      total = c[n-1]; want = q * total; prev_le = 0; prev_c = 0
      for (i = 0; i < n; i++) {
        if (c[i] >= want) {
          if (le[i] == "+Inf") { printf "> %s s", prev_le; exit }
          f = (c[i] > prev_c) ? (want - prev_c) / (c[i] - prev_c) : 0
          printf "%.1f ms", 1000 * (prev_le + f * (le[i] - prev_le)); exit
        }
        prev_le = le[i]; prev_c = c[i]
      }
    }' "$DIR/metrics.txt"
}
p50=$(quant 0.5)
p99=$(quant 0.99)
http_eps=$(awk -v n="$n_http" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
ingest_s=$(awk -v a="$t0" -v b="$t_http" 'BEGIN { printf "%.2f", b - a }')
drain_s=$(awk -v a="$t_http" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

# ---- 2. kcat -P, the same events from a file ----
python3 - "$n_http" "$DIR/events.tsv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
key = "sha256:0c4d9ad3f2b1c6e8a7d5b3f1e9c7a5b3d1f0e8c6a4b2d0f9e7c5a3b1d9f7e5c3"
tmpl = ('{"specversion":"1.0","id":"kc-%09d","source":"//rs/orders-api","type":"token.used",'
        '"time":"2026-11-22T07:47:51.123Z","subject":"alice@example.com",'
        '"datacontenttype":"application/json","data":{"token_id":"' + key + '",'
        '"client_id":"oncall-cli","subject":"alice@example.com","scopes":["db:orders:read",'
        '"db:orders:write"],"audience":["https://orders.example.com"],"incident_id":"INC-2041",'
        '"resource":"orders-api","method":"GET","path":"/v1/orders/12345/items?limit=50",'
        '"status":200,"ip":"10.20.30.40"}}')
with open(path, "w") as f:
    for i in range(n):
        f.write(key + "\t" + (tmpl % i) + "\n")
PY
k0=$(date +%s.%N)
km0=$(busy); kb0=$(ticks "$BROKER_PID")
/usr/bin/time -f '%U %S' -o "$DIR/kcat.cpu" kcat -P -b "$BS" -t bench.kcat -K $'\t' -l \
  -X enable.idempotence=true -X acks=all -X compression.type=lz4 -X linger.ms=5 \
  -X partitioner=murmur2_random -X queue.buffering.max.messages=21000 \
  -H content-type=application/cloudevents+json -H ce_specversion=1.0 -H ce_type=token.used \
  -H ce_id=x -H ce_source=//rs/orders-api "$DIR/events.tsv" 2>"$DIR/kcat.log"
k1=$(date +%s.%N)
km1=$(busy); kb1=$(ticks "$BROKER_PID")
kcat_eps=$(awk -v n="$n_http" -v a="$k0" -v b="$k1" 'BEGIN { printf "%.0f", n / (b - a) }')
ratio=$(awk -v a="$http_eps" -v b="$kcat_eps" 'BEGIN { printf "%.0f", 100 * a / b }')
load=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 3. the same collector without Kafka (embedded SQLite store) ----
# Kafka mode does all of this work (HTTP, validation, the fsync'd SQLite write
# of every event) and then more (outbox rows, the relay, the broker), so this
# rate is an upper bound for the collector path on this machine. The sync
# first writes back what kcat left in the broker's page cache.
sync
bin/tokentrail collect --listen 127.0.0.1:0 --db "$DIR/embedded.db" --port-file "$DIR/eport" \
  --log-level warn 2>"$DIR/collect-embedded.log" &
PID=$!
for _ in $(seq 100); do [ -s "$DIR/eport" ] && break; sleep 0.05; done
HPORT=$(cat "$DIR/eport")
"$DIR/loadgen" -p "$HPORT" -c "$CONNS" -n 1000 -d 2 >/dev/null
e0=$(metric_sum tokentrail_events_accepted_total); ec0=$(ticks "$PID")
et0=$(date +%s.%N)
elg_rc=0
"$DIR/loadgen" -p "$HPORT" -c "$CONNS" -n 1000 -d "$DURATION" >"$DIR/loadgen-embedded.txt" \
  2>"$DIR/loadgen-embedded.err" || elg_rc=$?
et1=$(date +%s.%N)
e1=$(metric_sum tokentrail_events_accepted_total); ec1=$(ticks "$PID")
kill "$PID"; wait "$PID" || true; PID=""
n_emb=$((e1 - e0))
emb_eps=$(awk -v n="$n_emb" -v a="$et0" -v b="$et1" 'BEGIN { printf "%.0f", n / (b - a) }')
emb_ratio=$(awk -v a="$emb_eps" -v b="$kcat_eps" 'BEGIN { printf "%.0f", 100 * a / b }')

echo "kafka bench: broker 127.0.0.1:$PORT, 3 partitions, lz4, acks=all, idempotent"
echo "  collector (HTTP NDJSON batches -> outbox -> Kafka): $n_http events delivered in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s (ingest ${ingest_s}s + drain ${drain_s}s): $http_eps events/s, non-2xx ${non2xx:-0}"
echo "  kcat -P (bare librdkafka, same events from a file): $kcat_eps events/s"
echo "  ratio: ${ratio}% of kcat"
echo "  the same collector without Kafka (embedded SQLite, same load generator): $emb_eps events/s durable = ${emb_ratio}% of kcat, collector CPU $(us_per "$n_emb" $((ec1 - ec0))) us per event (an upper bound for the Kafka path, which does this and more)"
echo "  delivery latency (produce -> delivery report): p50 $p50, p99 $p99"
# CPU per event, by process (robust to other work on the machine) and for the
# whole machine. When both runs keep the cores busy, the rates are in the
# inverse ratio of the per-event costs, so 60 % of kcat's rate needs the
# collector path (collector + broker + load generator) to cost at most the
# kcat path's (kcat + broker) / 0.6 per event.
lg_ticks=$(awk -v hz="$HZ" '{ printf "%.0f", ($1 + $2) * hz }' "$DIR/loadgen.cpu")
kc_ticks=$(awk -v hz="$HZ" '{ printf "%.0f", ($1 + $2) * hz }' "$DIR/kcat.cpu")
path_http=$(us_per "$n_http" $((c1 - c0 + b1 - b0 + lg_ticks)))
path_kcat=$(us_per "$n_http" $((kc_ticks + kb1 - kb0)))
echo "  CPU per event: collector path $path_http us (collector $(us_per "$n_http" $((c1 - c0))), broker $(us_per "$n_http" $((b1 - b0))), load generator $(us_per "$n_http" "$lg_ticks")); kcat path $path_kcat us (kcat $(us_per "$n_http" "$kc_ticks"), broker $(us_per "$n_http" $((kb1 - kb0))))"
echo "  whole machine per event (other processes included): $(us_per "$n_http" $((m1 - m0))) us during the collector run, $(us_per "$n_http" $((km1 - km0))) us during kcat"
echo "  60 % of kcat's rate at the same CPU needs the collector path at <= $(awk -v k="$path_kcat" 'BEGIN { printf "%.1f", k / 0.6 }') us per event"
echo "  HTTP request p99 $req_p99"
echo "  load average: $load0 before, $load1 after the HTTP run, $load after kcat ($(nproc) cores, shared with the broker and the load generator)"
emb_bad=$(awk -F= '$1 == "non2xx" || $1 == "sock_errors" { n += $2 } END { print n + 0 }' \
  "$DIR/loadgen-embedded.txt")
if [ "$elg_rc" != 0 ] || [ "$emb_bad" != 0 ]; then
  echo "kafka bench: the embedded run failed:" >&2; cat "$DIR/loadgen-embedded.err" >&2; exit 1
fi
if [ "$lg_rc" != 0 ] || [ "$non2xx" != 0 ]; then
  echo "kafka bench: some requests failed:" >&2; cat "$DIR/loadgen.err" >&2; exit 1
fi
