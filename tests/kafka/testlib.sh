# testlib.sh - helpers for tests/integration/t_kafka_*.sh: a real KRaft broker
# per test (tests/kafka/kafka.sh, jars cached in ~/.cache/tokentrail), stopped
# on exit together with the test's collectors. Source after lib.sh.

TK_SH=$TT_ROOT/tests/kafka/kafka.sh
TK_DIR=$TT_TMP/kafka

command -v kcat >/dev/null || die "kcat is missing (make deps installs it)"
command -v java >/dev/null || die "java is missing (make deps installs it)"

_tk_cleanup() {
    local rc=$?
    "$TK_SH" stop "$TK_DIR" >/dev/null 2>&1
    (exit "$rc")
    _tt_cleanup
}
trap _tk_cleanup EXIT

# tk_start: start the broker; sets TK_BS (bootstrap HOST:PORT).
tk_start() {
    mkdir -p "$TK_DIR"
    local port
    port=$("$TK_SH" start "$TK_DIR" 2>>"$TT_TMP/kafka.sh.log") ||
        die "broker did not start: $(tail -n 5 "$TT_TMP/kafka.sh.log")"
    TK_BS=127.0.0.1:$port
    note "broker on $TK_BS"
}

# tk_topic NAME PARTITIONS: create a topic and wait for its leaders.
tk_topic() {
    "$TK_SH" topics "$TK_DIR" --create --topic "$1" --partitions "$2" \
        --replication-factor 1 >>"$TT_TMP/kafka.sh.log" 2>&1 || die "cannot create topic $1"
    local i
    for i in $(seq 100); do
        [ "$(kcat -b "$TK_BS" -L -t "$1" -m 2 2>/dev/null | grep -c 'leader 1,')" -ge "$2" ] && return 0
        sleep 0.1
    done
    die "topic $1 has no leaders"
}

# tk_dump TOPIC FILE: every message, '%p\t%o\t%k\t%h\t%s' per line.
tk_dump() {
    kcat -C -b "$TK_BS" -t "$1" -e -o beginning -q -f '%p\t%o\t%k\t%h\t%s\n' >"$2" 2>>"$TT_TMP/kcat.log"
}

# tk_wait_outbox_empty [TIMEOUT_S]: until the collector's outbox is empty.
tk_wait_outbox_empty() {
    local deadline=$((SECONDS + ${1:-60})) v
    while :; do
        v=$(tt_metric tokentrail_outbox_events)
        [ "$v" = 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "outbox still holds $v events after ${1:-60}s"
            return 1
        fi
        sleep 0.2
    done
}
