#!/usr/bin/env bash
# Smoke test for tests/kafka/kafka.sh: a real single-node KRaft Kafka broker on
# 127.0.0.1, exercised with kcat. Exits non-zero on any failure; the last line
# is "kafka smoke: N passed, M failed".
#
#   tests/kafka/smoke.sh
#
# Env: SMOKE_MESSAGES (default 1000), SMOKE_DOWN_SECONDS (how long the broker
# stays down during the restart check, default 0; the fault test uses 20),
# SMOKE_CRASH=1 (restart by SIGKILL + start instead of a clean stop),
# SMOKE_KEEP=1 keeps the temp dir (broker is still stopped), plus everything
# kafka.sh reads (TT_CACHE, KAFKA_VERSION, ...).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K="$HERE/kafka.sh"
N="${SMOKE_MESSAGES:-1000}"
DOWN="${SMOKE_DOWN_SECONDS:-0}"
TOPIC="tt-smoke"
AUTO_TOPIC="tt-smoke-auto"

pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {  # description command... ; passes when the command succeeds
    local d="$1"; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
tcheck() {  # like check, appends the command's wall time
    local d="$1" t0; shift
    t0="$(now)"
    if "$@"; then ok "$d ($(since "$t0") s)"; else bad "$d ($(since "$t0") s)"; fi
}
finish() {
    echo "kafka smoke: $pass passed, $fail failed"
    [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
    exit $?
}
now() { date +%s.%N; }
since() { python3 -c "import sys;print(round($(now)-$1,1))"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tt-kafka-smoke.XXXXXX")"
B="$WORK/broker"
cleanup() {
    "$K" stop "$B" >/dev/null 2>&1 || true
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- fetch
t=$(now)
if LIBS="$("$K" fetch)"; then ok "fetch jars ($(since "$t") s, $(ls "$LIBS"/*.jar | wc -l) jars in $LIBS)"
else bad "fetch jars"; finish; fi

# ---------------------------------------------------------------- start
t=$(now)
if PORT="$("$K" start "$B")"; then ok "start broker on 127.0.0.1:$PORT ($(since "$t") s)"
else bad "start broker"; finish; fi
BS="127.0.0.1:$PORT"
PID1="$(cat "$B/kafka.pid")"
check "port file matches" test "$(cat "$B/port")" = "$PORT"
check "status reports running" "$K" status "$B" >/dev/null

# Every socket the broker listens on is on loopback.
listen_loopback_only() {
    local out
    out="$(ss -Hltnp 2>/dev/null | grep "pid=$PID1,")" || return 1
    [ -n "$out" ] && ! awk '{print $4}' <<<"$out" | grep -qv '^127\.0\.0\.1:'
}
if command -v ss >/dev/null; then
    check "broker listens only on 127.0.0.1" listen_loopback_only
fi

# ---------------------------------------------------------------- topic
check "create topic $TOPIC with 3 partitions (TopicCommand)" \
    "$K" topics "$B" --create --topic "$TOPIC" --partitions 3 --replication-factor 1 >/dev/null
partitions_of() {  # topic -> number of partitions with a leader
    timeout 15 kcat -b "$BS" -L -t "$1" -m 5 2>/dev/null | grep -c 'partition [0-9]*, leader 1,'
}
wait_partitions() {  # topic n
    local i
    for i in $(seq 1 50); do
        [ "$(partitions_of "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
check "metadata shows 3 partitions led by broker 1" wait_partitions "$TOPIC" 3

# ---------------------------------------------------------------- produce
for i in $(seq 1 "$N"); do echo "user-$i:tokens=$i model=m$((i % 7))"; done > "$WORK/in.txt"
awk -F: '{k=$1; sub(/^[^:]*:/, ""); print k " ce_type=token.used " $0}' "$WORK/in.txt" \
    | sort > "$WORK/expected"
# (kcat -P FILE would send the whole file as ONE message: feed stdin instead.)
produce_file() {  # topic file [kcat args...]
    local topic="$1" file="$2"; shift 2
    timeout 60 kcat -b "$BS" -P -K: -t "$topic" "$@" < "$file"
}
tcheck "produce $N keyed messages with header" \
    produce_file "$TOPIC" "$WORK/in.txt" -H ce_type=token.used -X acks=all

# ---------------------------------------------------------------- consume
consume() {  # topic outfile -> '%k %h %s' lines, sorted; partitions to outfile.p
    timeout 60 kcat -b "$BS" -C -e -q -o beginning -t "$1" -f '%p|%k %h %s\n' > "$2.raw" || return 1
    cut -d'|' -f2- "$2.raw" | sort > "$2"
    cut -d'|' -f1 "$2.raw" | sort -u > "$2.p"
}
tcheck "consume back to end of partitions" consume "$TOPIC" "$WORK/got1"
check "consumed count is $N" test "$(wc -l < "$WORK/got1")" -eq "$N"
check "keys, headers and values match what was produced" cmp -s "$WORK/expected" "$WORK/got1"
check "every message carries header ce_type=token.used" \
    test "$(grep -c '^user-[0-9]* ce_type=token.used tokens=' "$WORK/got1")" -eq "$N"
check "keys are spread over all 3 partitions" test "$(wc -l < "$WORK/got1.p")" -eq 3

# Same key -> same partition (what tokentrail's per-key ordering relies on).
same_key_same_partition() {
    printf 'user-1:again\n' | timeout 30 kcat -b "$BS" -P -K: -t "$TOPIC" || return 1
    local ps
    ps="$(timeout 60 kcat -b "$BS" -C -e -q -o beginning -t "$TOPIC" -f '%k %p\n' \
          | awk '$1 == "user-1" {print $2}' | sort -u | wc -l)"
    [ "$ps" -eq 1 ]
}
check "same key lands in the same partition" same_key_same_partition

# ---------------------------------------------------------------- auto-create + group
printf 'a:1\nb:2\nc:3\n' > "$WORK/auto.txt"
check "produce to a new topic (auto-create)" produce_file "$AUTO_TOPIC" "$WORK/auto.txt"
check "auto-created topic has num.partitions=${KAFKA_NUM_PARTITIONS:-3} partitions" \
    wait_partitions "$AUTO_TOPIC" "${KAFKA_NUM_PARTITIONS:-3}"
group_consume() {
    local c
    c="$(timeout 60 kcat -b "$BS" -G tt-smoke-group -e -q -o beginning -f '%k\n' "$TOPIC" | wc -l)"
    [ "$c" -eq $((N + 1)) ]
}
check "consumer group (-G) reads all $((N + 1)) messages" group_consume

# ---------------------------------------------------------------- restart
restart_broker() {
    if [ "${SMOKE_CRASH:-0}" = 1 ]; then   # SIGKILL instead of a clean stop
        "$K" kill "$B" && sleep "$DOWN" && "$K" start "$B" >/dev/null
    else
        "$K" restart "$B" "$DOWN" >/dev/null
    fi
}
MODE=clean; [ "${SMOKE_CRASH:-0}" = 1 ] && MODE="crash (SIGKILL)"
t=$(now)
if restart_broker; then ok "restart broker, $MODE, down ${DOWN} s ($(since "$t") s total)"
else bad "restart broker ($MODE)"; finish; fi
PID2="$(cat "$B/kafka.pid" 2>/dev/null)"
check "restart kept the port" test "$(cat "$B/port")" = "$PORT"
check "restart started a new process" test -n "$PID2" -a "$PID2" != "$PID1"
check "old broker process is gone" bash -c "! kill -0 $PID1 2>/dev/null || grep -q '^State:.*Z' /proc/$PID1/status"
check "partitions led again after restart" wait_partitions "$TOPIC" 3
check "consume after restart" consume "$TOPIC" "$WORK/got2"
check "all $((N + 1)) messages survived the restart" test "$(wc -l < "$WORK/got2")" -eq $((N + 1))
# got2 = got1 + the one 'user-1 ... again' message, nothing lost or changed.
check "restart data identical (keys, headers, values)" \
    test "$(comm -23 "$WORK/got1" "$WORK/got2" | wc -l)" -eq 0 -a \
         "$(comm -13 "$WORK/got1" "$WORK/got2" | grep -c 'again$')" -eq 1
check "produce after restart" \
    bash -c "printf 'post:restart\n' | timeout 30 kcat -b '$BS' -P -K: -t '$TOPIC'"

# ---------------------------------------------------------------- stop
tcheck "stop broker (SIGTERM)" "$K" stop "$B"
check "pid file removed" test ! -e "$B/kafka.pid"
check "broker process gone" bash -c "! kill -0 $PID2 2>/dev/null || grep -q '^State:.*Z' /proc/$PID2/status"
check "port closed" bash -c "! timeout 5 kcat -b '$BS' -L -m 2 >/dev/null 2>&1"
check "stop is idempotent" "$K" stop "$B"

finish
