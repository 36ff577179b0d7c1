#!/usr/bin/env bash
# t_port_in_use.sh - a second collector or analyzer on a port that a running
# one already serves must refuse to start (exit 2, "cannot listen"), not share
# the port with it.
#
# Pins a bug: both servers asked libmicrohttpd for address reuse, which on
# Linux is SO_REUSEPORT: the second process bound the same port and the kernel
# split new connections between the two (an auditor saw 3 of 10 events land in
# the first collector's database and 7 in the second's).
set -u
. "$(dirname "$0")/lib.sh"

tt_start || exit 1
first_port=$TT_PORT
first_db=$TT_DB
first_pid=$TT_PID

# A second collector asked for the same port.
second=$TT_TMP/second
mkdir -p "$second"
timeout 20 "$TT_BIN" collect --listen "127.0.0.1:$first_port" --db "$second/tt.db" \
    </dev/null >"$second/out" 2>"$second/err"
rc=$?
sed 's/^/    # second collector: /' "$second/err"
assert_eq "$rc" 2 "second collector on a port in use: exit status"
assert_contains "$(cat "$second/err")" "cannot listen on 127.0.0.1:$first_port" "second collector: error"

# The analyzer's /metrics listener behaves the same.
timeout 20 "$TT_BIN" analyze --db "$first_db" --policy "$TT_ROOT/analyzers/policies/example.yaml" \
    --listen "127.0.0.1:$first_port" </dev/null >"$second/aout" 2>"$second/aerr"
rc=$?
sed 's/^/    # analyzer: /' "$second/aerr"
assert_eq "$rc" 2 "analyzer on a port in use: exit status"
assert_contains "$(cat "$second/aerr")" "cannot serve on 127.0.0.1:$first_port" "analyzer: error"

# Every event still reaches the first collector.
ok=0
for i in $(seq 1 10); do
    tt_post_str "{\"specversion\":\"1.0\",\"id\":\"port-$i\",\"source\":\"t\",\"type\":\"token.used\",\"time\":\"2026-11-22T07:00:0${i: -1}Z\",\"data\":{\"token_id\":\"tok-port\",\"resource\":\"r\"}}"
    [ "$STATUS" = 200 ] && ok=$((ok + 1))
done
assert_eq "$ok" 10 "posts answered 200"
assert_eq "$(sqlite3 "$first_db" "select count(*) from events where id like 'port-%'")" 10 \
    "events stored by the first collector"
assert_eq "$(kill -0 "$first_pid" 2>/dev/null && echo alive)" alive "first collector still running"
tt_done
