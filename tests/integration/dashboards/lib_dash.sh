# lib_dash.sh - helpers for t_dashboards_*.sh, sourced after lib.sh: real
# drill runs turned into a node_exporter textfile, and the analyzer.

# dash_build_drill_tools: compile tests/bench/drill_bench_server.c (an OAuth
# token/revoke/resource server whose tokens stop working 20-120 ms after
# revocation) and the tt_drill_prom driver into $TT_TMP.
dash_build_drill_tools() {
    cc -O2 -o "$TT_TMP/drill_server" "$TT_ROOT/tests/bench/drill_bench_server.c" ||
        die "cannot build drill_bench_server"
    cc -std=c11 -D_GNU_SOURCE -O1 -I"$TT_ROOT/lib" -o "$TT_TMP/drill_prom" \
        "$TT_IDIR/dashboards/drill_prom_main.c" "$TT_ROOT/lib/tt_drill_prom.c" \
        "$TT_ROOT/lib/tt_buf.c" "$TT_ROOT/lib/tt_time.c" -ljansson -lcrypto -lm ||
        die "cannot build the tt_drill_prom driver"
}

# dash_drill_server: start it; sets DRILL_SERVER_PID and DRILL_SERVER_PORT.
dash_drill_server() {
    rm -f "$TT_TMP/drill_server.port"
    "$TT_TMP/drill_server" "$TT_TMP/drill_server.port" 20 100 >"$TT_TMP/drill_server.log" 2>&1 &
    DRILL_SERVER_PID=$!
    TT_PIDS+=("$DRILL_SERVER_PID")
    for _ in $(seq 100); do [ -s "$TT_TMP/drill_server.port" ] && break; sleep 0.02; done
    [ -s "$TT_TMP/drill_server.port" ] || die "drill_bench_server did not start"
    DRILL_SERVER_PORT=$(cat "$TT_TMP/drill_server.port")
}

# dash_drill NAME BOUND_MS TEXTFILE: a real `tokentrail drill run` of 2
# iterations against the drill server with the threshold
# revocation_propagation_ms{rs-fast} max < BOUND_MS (2000 passes, 1 fails),
# then its report.json into TEXTFILE (through `drill run --textfile` when the
# command has it, else the driver). Sets DRILL_RC.
dash_drill() {
    local name=$1 bound=$2 textfile=$3 dir=$TT_TMP/drill-$1
    mkdir -p "$dir"
    cat >"$dir/scenario.yaml" <<YAML
name: $name
authorization_server:
  token_endpoint: http://127.0.0.1:$DRILL_SERVER_PORT/token
  revocation_endpoint: http://127.0.0.1:$DRILL_SERVER_PORT/revoke
client:
  client_id: dash
  client_secret_env: DASH_DRILL_SECRET
grant:
  scope: a
resource_servers:
  - name: rs-fast
    url: http://127.0.0.1:$DRILL_SERVER_PORT/rs
end: revoke
load:
  engineers: 1
  iterations: 2
  probe_interval: 10ms
  probe_timeout: 2s
thresholds:
  lingering: ["count == 0"]
  revocation_propagation_ms{rs-fast}: ["max < $bound"]
YAML
    local tf=()
    if "$TT_CLI" drill run --help 2>&1 | grep -q -- '--textfile'; then
        tf=(--textfile "$textfile")
    fi
    DASH_DRILL_SECRET=x "$TT_CLI" drill run -q "$dir/scenario.yaml" --out "$dir/out" "${tf[@]}" \
        >"$dir/drill.log" 2>&1
    DRILL_RC=$?
    [ -s "$dir/out/report.json" ] || die "drill $name wrote no report.json: $(cat "$dir/drill.log")"
    if [ ${#tf[@]} -eq 0 ]; then
        "$TT_TMP/drill_prom" "$dir/out/report.json" "$textfile" ||
            fail "tt_drill_prom_write failed on the report of drill $name"
    fi
}

# dash_start_analyzer DB: `tokentrail analyze` following DB with the example
# policy, /metrics on a free port; sets AN_PID, AN_PORT.
dash_start_analyzer() {
    rm -f "$TT_TMP/an.port"
    "$TT_CLI" analyze --db "$1" --policy "$TT_ROOT/analyzers/policies/example.yaml" \
        --lateness 1s --format json --listen 127.0.0.1:0 --port-file "$TT_TMP/an.port" \
        >"$TT_TMP/an.out" 2>"$TT_TMP/an.err" &
    AN_PID=$!
    TT_PIDS+=("$AN_PID")
    echo "$AN_PID" >>"$TT_TMP/pids"
    for _ in $(seq 200); do [ -s "$TT_TMP/an.port" ] && break; sleep 0.05; done
    [ -s "$TT_TMP/an.port" ] || die "analyzer did not start: $(cat "$TT_TMP/an.err")"
    AN_PORT=$(cat "$TT_TMP/an.port")
}
