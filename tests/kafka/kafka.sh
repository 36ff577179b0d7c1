#!/usr/bin/env bash
# Throwaway single-node Apache Kafka (KRaft, broker+controller in one JVM) on
# 127.0.0.1 for tokentrail's integration tests. Jars come from Maven Central
# via pom.xml beside this script; only Java 17 + Maven (+ kcat, python3) are
# needed. See README.md in this directory.
#
#   kafka.sh fetch                  resolve jars into the cache (idempotent)
#   kafka.sh start DIR [PORT]       format (once) + start a broker, wait ready
#   kafka.sh stop DIR               SIGTERM, 30 s grace, then SIGKILL
#   kafka.sh kill DIR               SIGKILL at once (crash; data dir kept)
#   kafka.sh restart DIR [DOWN_S]   stop, optionally stay down DOWN_S seconds,
#                                   start again on the same ports and data
#   kafka.sh status DIR             exit 0 if the broker answers metadata
#   kafka.sh port DIR               print the PLAINTEXT port
#   kafka.sh bootstrap DIR          print 127.0.0.1:PORT
#   kafka.sh topics DIR ARGS...     org.apache.kafka.tools.TopicCommand
#                                   --bootstrap-server <broker> ARGS...
#   kafka.sh tool DIR CLASS ARGS... run any class from the cached class path
#   kafka.sh libs                   print the libs directory (fetches first)
#
# Environment:
#   KAFKA_VERSION         Kafka version (default: the one in pom.xml, 3.9.2)
#   TT_CACHE              cache root (default $HOME/.cache/tokentrail)
#   KAFKA_LIBS            use this libs dir instead of the cache (no fetch)
#   KAFKA_NUM_PARTITIONS  default partitions for auto-created topics (3)
#   KAFKA_HEAP_OPTS       JVM heap flags (default -Xms128m -Xmx512m)
#   KAFKA_JVM_OPTS        extra JVM flags for the broker (appended)
#   KAFKA_START_TIMEOUT   seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_EXTRA_PROPS     extra lines appended to server.properties
#   KAFKA_MVN_ARGS        extra args for mvn (e.g. -Dmaven.repo.local=...)
#   JAVA_HOME / JAVA      java to use
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"

die() { echo "kafka.sh: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }

pom_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_version)}"
[ -n "$KAFKA_VERSION" ] || die "cannot read kafka.version from $POM"
CACHE_ROOT="${TT_CACHE:-${HOME:-/tmp}/.cache/tokentrail}"
CACHE_DIR="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="${KAFKA_LIBS:-$CACHE_DIR/libs}"
STAMP_NAME=".tokentrail-fetch-complete"

if [ -n "${JAVA:-}" ]; then :
elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java
fi

# The stamp records the version and a hash of pom.xml, so editing the pom
# (e.g. adding a jar) invalidates the cache while a plain re-run is a no-op.
stamp_value() {
    echo "kafka=$KAFKA_VERSION pom=$(sha256sum "$POM" | cut -d' ' -f1)"
}

cmd_fetch() {
    if [ -n "${KAFKA_LIBS:-}" ]; then
        [ -d "$KAFKA_LIBS" ] || die "KAFKA_LIBS=$KAFKA_LIBS is not a directory"
        return 0
    fi
    local want; want="$(stamp_value)"
    if [ -f "$LIBS/$STAMP_NAME" ] && [ "$(cat "$LIBS/$STAMP_NAME")" = "$want" ]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka jars)"
    mkdir -p "$CACHE_DIR"
    # Serialise concurrent fetches (parallel CI jobs sharing one cache).
    exec 9>"$CACHE_DIR/.lock"
    flock 9
    if [ -f "$LIBS/$STAMP_NAME" ] && [ "$(cat "$LIBS/$STAMP_NAME")" = "$want" ]; then
        exec 9>&-; return 0
    fi
    local tmp="$CACHE_DIR/libs.tmp.$$" t0=$SECONDS
    rm -rf "$tmp"
    log "fetching Kafka $KAFKA_VERSION jars into $LIBS (Maven Central) ..."
    # shellcheck disable=SC2086
    if ! mvn -B -q -Dstyle.color=never -f "$POM" ${KAFKA_MVN_ARGS:-} \
            "-Dkafka.version=$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime \
            "-DoutputDirectory=$tmp" > "$tmp.mvn.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$tmp.mvn.log" | tail -n 40 >&2
        rm -rf "$tmp" "$tmp.mvn.log"; exec 9>&-
        die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; exec 9>&-; die "no kafka_2.13 jar resolved"; }
    rm -f "$tmp.mvn.log"
    echo "$want" > "$tmp/$STAMP_NAME"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    exec 9>&-
    log "fetched $(ls "$LIBS"/*.jar | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - t0)) s"
}

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Kafka's Uuid string form: 16 random bytes, URL-safe base64, no padding,
# not starting with '-' (what Uuid.randomUuid() / StorageTool random-uuid
# produce). Done in python to save one JVM start.
random_cluster_id() {
    python3 -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-") and s != "AAAAAAAAAAAAAAAAAAAAAA":
        print(s); break'
}

proc_running() {  # pid -> 0 if the process exists and is not a zombie
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # kill -0 also succeeds on a zombie (our child, not yet reaped).
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]
}

pid_alive() {  # pid -> 0 if it is a live kafka.Kafka JVM
    proc_running "$1" || return 1
    # Guard against PID reuse: it must be our broker's command line.
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

read_pid() { cat "$1/kafka.pid" 2>/dev/null || true; }

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

port_open() {  # port -> 0 if something accepts TCP on 127.0.0.1:port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

kcat_ready() {  # dir port -> 0 when the broker lists itself in metadata
    local out
    # Cheap TCP probe first: kcat -L on a closed port burns its whole -m
    # timeout, which would quantise the readiness wait to whole seconds.
    port_open "$2" || return 1
    out="$(timeout 10 kcat -b "127.0.0.1:$2" -L -m 3 2>/dev/null)" || return 1
    grep -q '^ *1 brokers:' <<<"$out" && grep -q 'broker 1 at 127\.0\.0\.1:' <<<"$out"
}

write_configs() {  # dir port cport
    local dir="$1" port="$2" cport="$3"
    cat > "$dir/server.properties" <<EOF
# Generated by tests/kafka/kafka.sh - single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=${KAFKA_NUM_PARTITIONS:-3}
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=${KAFKA_OFFSETS_PARTITIONS:-3}
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=${KAFKA_TXN_PARTITIONS:-3}
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# After a crash (SIGKILL) the controller rejects the restarted broker's
# registration (DUPLICATE_BROKER_REGISTRATION) until the old session expires:
# 9 s by default. Shorter session = faster crash-restart in fault tests.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
delete.topic.enable=true
EOF
    if [ -n "${KAFKA_EXTRA_PROPS:-}" ]; then
        printf '%s\n' "$KAFKA_EXTRA_PROPS" >> "$dir/server.properties"
    fi
    cat > "$dir/log4j.properties" <<EOF
# Generated by tests/kafka/kafka.sh: everything goes to one file.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/kafka.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.controller=INFO
log4j.logger.state.change.logger=INFO
log4j.logger.org.apache.kafka.raft=INFO
log4j.logger.org.apache.zookeeper=WARN
EOF
    # Quiet config for short-lived CLI tools (TopicCommand etc.).
    cat > "$dir/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

fail_start() {  # dir msg
    echo "kafka.sh: $2" >&2
    if [ -f "$1/kafka.log" ]; then
        if grep -qE '^\[[^]]*\] (ERROR|FATAL) ' "$1/kafka.log"; then
            echo "---- first ERROR/FATAL lines of $1/kafka.log ----" >&2
            grep -E -A3 -m3 '^\[[^]]*\] (ERROR|FATAL) ' "$1/kafka.log" | cut -c1-400 >&2
        fi
        echo "---- last 30 lines of $1/kafka.log ----" >&2
        tail -n 30 "$1/kafka.log" | cut -c1-400 >&2
    fi
    if [ -s "$1/kafka.out" ]; then
        echo "---- last 20 lines of $1/kafka.out (stdout/stderr) ----" >&2
        tail -n 20 "$1/kafka.out" >&2
    fi
    exit 1
}

cmd_start() {
    [ $# -ge 1 ] || die "usage: kafka.sh start DIR [PORT]"
    local dir port cport pid
    dir="$(abs_dir "$1")"
    command -v kcat >/dev/null || die "kcat not found (apt-get install kcat)"
    command -v python3 >/dev/null || die "python3 not found"
    cmd_fetch

    pid="$(read_pid "$dir")"
    if pid_alive "$pid"; then
        port="$(cat "$dir/port")"
        if kcat_ready "$dir" "$port"; then
            log "already running (pid $pid) on 127.0.0.1:$port"
            echo "$port"; return 0
        fi
        die "a broker (pid $pid) is running in $dir but not answering; run 'kafka.sh stop $dir' first"
    fi

    # Ports: explicit argument > the ones this DIR used before > fresh ones.
    if [ -n "${2:-}" ]; then port="$2"
    elif [ -s "$dir/port" ]; then port="$(cat "$dir/port")"
    else port="$(free_port)"
    fi
    if [ -s "$dir/controller.port" ]; then cport="$(cat "$dir/controller.port")"
    else
        cport="$(free_port)"
        while [ "$cport" = "$port" ]; do cport="$(free_port)"; done
    fi
    echo "$port" > "$dir/port"
    echo "$cport" > "$dir/controller.port"

    write_configs "$dir" "$port" "$cport"

    local cp="$LIBS/*"
    local heap="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
    # shellcheck disable=SC2206
    local jvm=($heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20
               -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1
               -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
               "-Dlog4j.configuration=file:$dir/log4j.properties"
               "-Dkafka.logs.dir=$dir" ${KAFKA_JVM_OPTS:-})

    # Format the KRaft metadata/log dir once; a restart keeps the data.
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cid; cid="$(random_cluster_id)"
        echo "$cid" > "$dir/cluster.id"
        if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 \
                "-Dlog4j.configuration=file:$dir/tools-log4j.properties" \
                -cp "$cp" kafka.tools.StorageTool format \
                -t "$cid" -c "$dir/server.properties" > "$dir/format.out" 2>&1; then
            cat "$dir/format.out" >&2
            die "kafka.tools.StorageTool format failed in $dir"
        fi
    fi

    local t0; t0="$(date +%s.%N)"
    # setsid: own session/process group so the test harness's signals
    # (Ctrl-C) don't hit it and it can't grab the caller's terminal.
    setsid "$JAVA" "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
        > "$dir/kafka.out" 2>&1 < /dev/null &
    pid=$!
    disown "$pid" 2>/dev/null || true   # no "Killed" job notice from bash
    echo "$pid" > "$dir/kafka.pid"

    local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
    while :; do
        # (not pid_alive: right after the fork the cmdline may not be java's yet)
        if ! proc_running "$pid"; then
            rm -f "$dir/kafka.pid"
            fail_start "$dir" "broker process $pid exited during startup (port $port, controller $cport)"
        fi
        if kcat_ready "$dir" "$port"; then break; fi
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/kafka.pid"
            fail_start "$dir" "broker did not answer on 127.0.0.1:$port within ${KAFKA_START_TIMEOUT:-60} s (killed pid $pid)"
        fi
        sleep 0.2
    done
    log "Kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $pid, controller port $cport) in $(python3 -c "import time;print(round(time.time()-$t0,1))") s; dir $dir"
    echo "$port"
}

cmd_stop() {
    [ $# -ge 1 ] || die "usage: kafka.sh stop DIR"
    local dir="$1" pid
    [ -d "$dir" ] || return 0
    pid="$(read_pid "$dir")"
    if [ -z "$pid" ]; then return 0; fi
    if ! pid_alive "$pid"; then rm -f "$dir/kafka.pid"; return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
    while pid_alive "$pid"; do
        if [ $SECONDS -ge $deadline ]; then
            log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT:-30} s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local k=0
            while pid_alive "$pid" && [ $k -lt 50 ]; do sleep 0.1; k=$((k + 1)); done
            break
        fi
        sleep 0.2
    done
    rm -f "$dir/kafka.pid"
    log "stopped broker pid $pid ($dir)"
}

cmd_kill() {  # crash-style stop: SIGKILL at once, no clean shutdown
    [ $# -ge 1 ] || die "usage: kafka.sh kill DIR"
    local dir="$1" pid k=0
    pid="$(read_pid "$dir")"
    if pid_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid" && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
        log "killed broker pid $pid ($dir)"
    fi
    rm -f "$dir/kafka.pid"
}

cmd_restart() {
    [ $# -ge 1 ] || die "usage: kafka.sh restart DIR [DOWN_SECONDS]"
    local dir="$1" down="${2:-0}"
    [ -s "$dir/port" ] || die "$dir has no port file; was it ever started?"
    cmd_stop "$dir"
    if [ "$down" != 0 ]; then
        log "broker down for $down s"
        sleep "$down"
    fi
    cmd_start "$dir" "$(cat "$dir/port")"
}

cmd_status() {
    [ $# -ge 1 ] || die "usage: kafka.sh status DIR"
    local dir="$1" pid
    pid="$(read_pid "$dir")"
    pid_alive "$pid" || { echo "not running"; return 1; }
    if kcat_ready "$dir" "$(cat "$dir/port")"; then
        echo "running pid $pid 127.0.0.1:$(cat "$dir/port")"
    else
        echo "pid $pid alive but not answering"; return 1
    fi
}

cmd_tool() {
    [ $# -ge 2 ] || die "usage: kafka.sh tool DIR CLASS [ARGS...]"
    local dir="$1" cls="$2"; shift 2
    cmd_fetch
    local l4j="$dir/tools-log4j.properties"
    if [ ! -f "$l4j" ]; then
        mkdir -p "$dir"
        printf '%s\n' 'log4j.rootLogger=WARN, stderr' \
            'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
            'log4j.appender.stderr.Target=System.err' \
            'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
            'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' > "$l4j"
    fi
    exec "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        "-Dlog4j.configuration=file:$l4j" -cp "$LIBS/*" "$cls" "$@"
}

sub="${1:-}"; [ $# -gt 0 ] && shift
case "$sub" in
    fetch)     cmd_fetch; echo "$LIBS" ;;
    libs)      cmd_fetch; echo "$LIBS" ;;
    start)     cmd_start "$@" ;;
    stop)      cmd_stop "$@" ;;
    kill)      cmd_kill "$@" ;;
    restart)   cmd_restart "$@" ;;
    status)    cmd_status "$@" ;;
    port)      [ $# -ge 1 ] || die "usage: kafka.sh port DIR"; cat "$1/port" ;;
    bootstrap) [ $# -ge 1 ] || die "usage: kafka.sh bootstrap DIR"; echo "127.0.0.1:$(cat "$1/port")" ;;
    topics)
        [ $# -ge 1 ] || die "usage: kafka.sh topics DIR ARGS..."
        d="$1"; shift
        cmd_tool "$d" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "127.0.0.1:$(cat "$d/port")" "$@" ;;
    tool)      cmd_tool "$@" ;;
    ""|-h|--help|help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//' ;;
    *)         die "unknown subcommand '$sub' (try: kafka.sh help)" ;;
esac
