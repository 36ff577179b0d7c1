#!/usr/bin/env bash
# tokentrail OAuth lab: a real authorization server (oidc-provider, as.mjs) and
# real resource servers (private Apache + mod_oauth2), all on 127.0.0.1.
#
#   lab.sh deps          install apache2 + libapache2-mod-oauth2 (+curl, jq) if
#                        missing, and `npm ci` if node_modules is missing
#   lab.sh start DIR     pick free ports, start AS then Apache, wait for
#                        readiness, write DIR/lab.env (sourceable)
#   lab.sh stop DIR      stop both by PID (idempotent)
#   lab.sh status DIR    print what is running (exit 0 only if both are up)
#
# Env for start:
#   LAB_RS          resource servers as "name:expiry ..."
#                   (default "rs-nocache:0 rs-cache5:5 rs-cache1:1")
#   LAB_ACCESS_TTL  access token lifetime, s (default 300); also LAB_DEVICE_TTL,
#                   LAB_GRANT_TTL (see as.mjs)
#   LAB_RS_LOGLEVEL Apache LogLevel (default "warn"; e.g. "warn oauth2:debug")
#   LAB_EVENTS_URL  as.mjs also POSTs each event there
#   LAB_COLLECTOR_URL  forward token events (AS events + RS access log) as
#                   CloudEvents to this tokentrail collector (…/v1/events) with
#                   forward.mjs; LAB_COLLECTOR_TOKEN_FILE holds its bearer token
#   LAB_START_TIMEOUT seconds to wait for readiness (default 20)
#   LAB_TOKEN_LOG   TEST INSTRUMENTATION ONLY, off by default: the AS appends
#                   the raw value of every access token it issues to this file
#                   (one per line, mode 0600), so a test can look for them in
#                   tokentrail's output. Never set it outside tests.
#
# Secrets are generated at start (lab-only values), written under DIR/secrets
# (0700/0600) and into DIR/as-config.json and DIR/rs.conf (both 0600).
set -euo pipefail

LAB_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RESOURCE="urn:tokentrail:lab:api"
RESOURCE_SCOPES="db:orders:read db:orders:write db:customers:read"
DEFAULT_RS="rs-nocache:0 rs-cache5:5 rs-cache1:1"

say() { printf 'lab: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
cmd_deps() {
    local pkgs=()
    command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || pkgs+=(apache2)
    [ -f /usr/lib/apache2/modules/mod_oauth2.so ] || pkgs+=(libapache2-mod-oauth2)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v jq >/dev/null 2>&1 || pkgs+=(jq)
    if [ ${#pkgs[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "need root to apt-get install ${pkgs[*]}"
        say "installing ${pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q "${pkgs[@]}" >/dev/null
    fi
    command -v node >/dev/null 2>&1 || die "node (>= 20) is required"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || die "node >= 20 required (have $(node --version))"
    if [ ! -f "$LAB_HOME/node_modules/oidc-provider/package.json" ]; then
        say "npm ci in $LAB_HOME"
        (cd "$LAB_HOME" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    say "deps ok: $(/usr/sbin/apache2 -v | head -1 | sed 's/Server version: //'), mod_oauth2 $(dpkg-query -W -f='${Version}' libapache2-mod-oauth2 2>/dev/null || echo '?'), node $(node --version), oidc-provider $(node -p "require('$LAB_HOME/node_modules/oidc-provider/package.json').version")"
}

# ---------------------------------------------------------------------------
free_ports() { # N -> N distinct free 127.0.0.1 ports, space separated
    node -e '
const net = require("net");
const n = Number(process.argv[1]);
const servers = [];
for (let i = 0; i < n; i++) {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    servers.push(s);
    if (servers.length === n) {
      console.log(servers.map((x) => x.address().port).join(" "));
      servers.forEach((x) => x.close());
    }
  });
}' "$1"
}

gen_secret() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

env_name() { # rs-cache5 -> RS_CACHE5 ; tt-svc -> SVC
    local n=${1^^}
    n=${n//-/_}
    printf '%s' "$n"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_matches() { # PID STRING: process is alive and its cmdline contains STRING
    local pid=$1 want=$2 cmd
    pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$want"* ]]
}

wait_http() { # URL TIMEOUT_S PID
    local url=$1 timeout=$2 pid=$3 i
    for ((i = 0; i < timeout * 10; i++)); do
        if curl -s --noproxy '*' -o /dev/null -m 1 -f "$url"; then return 0; fi
        [ -z "$pid" ] || pid_alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

stop_pid() { # PID MATCH NAME
    local pid=$1 match=$2 name=$3 i
    if ! pid_matches "$pid" "$match"; then
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || { say "stopped $name (pid $pid)"; return 0; }
        sleep 0.1
    done
    say "$name (pid $pid) did not stop on TERM; sending KILL"
    local -a kids=()
    mapfile -t kids < <(pgrep -P "$pid" 2>/dev/null || true)
    kill -KILL "$pid" "${kids[@]}" 2>/dev/null || true
    sleep 0.2
}

# ---------------------------------------------------------------------------
cmd_start() {
    local dir=${1:-}
    [ -n "$dir" ] || die "usage: lab.sh start DIR"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ $dir =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "DIR path must match [A-Za-z0-9._/+-]: $dir"
    if [ -f "$dir/lab.env" ]; then
        # shellcheck disable=SC1091
        if (. "$dir/lab.env" && { pid_alive "${AS_PID:-}" || pid_alive "${APACHE_PID:-}"; }); then
            die "a lab is already running in $dir (lab.sh stop $dir first)"
        fi
    fi
    [ -f "$LAB_HOME/node_modules/oidc-provider/package.json" ] || die "node_modules missing (run: lab.sh deps)"
    [ -f /usr/lib/apache2/modules/mod_oauth2.so ] || die "mod_oauth2 missing (run: lab.sh deps)"
    local timeout=${LAB_START_TIMEOUT:-20}

    local -a rs_names=() rs_expiry=()
    local spec
    for spec in ${LAB_RS:-$DEFAULT_RS}; do
        [[ $spec =~ ^([a-z0-9][a-z0-9-]*):([0-9]+)$ ]] || die "bad LAB_RS entry: $spec (want name:expiry)"
        rs_names+=("${BASH_REMATCH[1]}")
        rs_expiry+=("${BASH_REMATCH[2]}")
    done
    local nrs=${#rs_names[@]}
    [ "$nrs" -ge 1 ] || die "LAB_RS is empty"

    # Apache's children run as www-data and must traverse DIR to read DIR/www.
    # Secrets stay in 0700/0600 files and dirs.
    chmod 0755 "$dir"
    mkdir -p "$dir/secrets" "$dir/logs" "$dir/apache" "$dir/www"
    chmod 0700 "$dir/secrets"
    chmod 0755 "$dir/logs" "$dir/apache" "$dir/www"
    rm -f "$dir/lab.env" "$dir/stopped"

    local -a ports
    read -r -a ports <<<"$(free_ports $((nrs + 1)))"
    [ "${#ports[@]}" -eq $((nrs + 1)) ] || die "could not pick free ports"
    local as_port=${ports[0]}
    local as_url="http://127.0.0.1:$as_port"

    # --- secrets and AS config -------------------------------------------
    umask 077
    local c
    for c in tt-svc tt-batch tt-exchanger tt-admin "${rs_names[@]}"; do
        gen_secret >"$dir/secrets/$c.secret"
    done
    gen_secret >"$dir/secrets/approve.secret"
    secret_of() { cat "$dir/secrets/$1.secret"; }

    local rs_clients="" i
    for ((i = 0; i < nrs; i++)); do
        rs_clients+=$(printf ',\n    {"client_id":"%s","client_secret":"%s","grant_types":[],"lab_role":"rs"}' \
            "${rs_names[$i]}" "$(secret_of "${rs_names[$i]}")")
    done
    cat >"$dir/as-config.json" <<EOF
{
  "default_resource": "$RESOURCE",
  "resources": { "$RESOURCE": { "scope": "$RESOURCE_SCOPES" } },
  "approve_secret": "$(cat "$dir/secrets/approve.secret")",
  "clients": [
    {"client_id":"tt-svc","client_secret":"$(secret_of tt-svc)","grant_types":["client_credentials"],"lab_api_scopes":"db:orders:read db:orders:write db:customers:read"},
    {"client_id":"tt-batch","client_secret":"$(secret_of tt-batch)","grant_types":["client_credentials"],"lab_api_scopes":"db:orders:read"},
    {"client_id":"tt-device","token_endpoint_auth_method":"none","grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"lab_api_scopes":"db:orders:read db:orders:write"},
    {"client_id":"tt-exchanger","client_secret":"$(secret_of tt-exchanger)","grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"],"lab_api_scopes":"db:orders:read"},
    {"client_id":"tt-admin","client_secret":"$(secret_of tt-admin)","grant_types":["client_credentials"],"lab_role":"admin","lab_api_scopes":"$RESOURCE_SCOPES"}$rs_clients
  ]
}
EOF
    umask 022

    # --- authorization server --------------------------------------------
    : >"$dir/logs/as.log"
    : >"$dir/logs/as-events.jsonl"
    local token_log=""
    if [ -n "${LAB_TOKEN_LOG:-}" ]; then
        # as.mjs runs in LAB_HOME: make the path absolute; create it 0600.
        case $LAB_TOKEN_LOG in
        /*) token_log=$LAB_TOKEN_LOG ;;
        *) token_log=$PWD/$LAB_TOKEN_LOG ;;
        esac
        (umask 077 && : >>"$token_log") || die "cannot create LAB_TOKEN_LOG $token_log"
        chmod 0600 "$token_log"
        say "LAB_TOKEN_LOG: raw access tokens go to $token_log (test instrumentation)"
    fi
    (
        cd "$LAB_HOME"
        if [ -n "$token_log" ]; then export LAB_TOKEN_LOG="$token_log"; else unset LAB_TOKEN_LOG; fi
        unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy
        export LAB_EVENTS_FILE="$dir/logs/as-events.jsonl"
        exec node "$LAB_HOME/as.mjs" "$as_port" "$dir/as-config.json" </dev/null >>"$dir/logs/as.log" 2>&1
    ) &
    local as_pid=$!
    echo "$as_pid" >"$dir/as.pid"
    if ! wait_http "$as_url/lab/health" "$timeout" "$as_pid"; then
        say "authorization server did not become ready; log:"
        tail -20 "$dir/logs/as.log" >&2 || true
        stop_pid "$as_pid" as.mjs "authorization server"
        exit 1
    fi
    say "authorization server up: $as_url (pid $as_pid)"

    # --- resource servers (private Apache) -------------------------------
    local -a specs=()
    for ((i = 0; i < nrs; i++)); do
        specs+=("${rs_names[$i]}:${ports[$((i + 1))]}:${rs_expiry[$i]}:${rs_names[$i]}:$dir/secrets/${rs_names[$i]}.secret")
    done
    "$LAB_HOME/render-rs-conf.sh" "$dir/rs.conf" "$dir/apache" "$dir/logs" "$dir/www" "$as_url" "${specs[@]}"
    rm -f "$dir/apache/apache2.pid"
    # A clean environment: no HTTP(S)_PROXY (libcurl inside mod_oauth2 honours
    # them), no Debian APACHE_* variables needed.
    if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C /usr/sbin/apache2 -f "$dir/rs.conf" -k start; then
        say "apache2 -k start failed; error log:"
        tail -20 "$dir/logs/rs-error.log" >&2 || true
        stop_pid "$as_pid" as.mjs "authorization server"
        exit 1
    fi
    local apache_pid="" ok=1
    for ((i = 0; i < timeout * 10; i++)); do
        apache_pid=$(cat "$dir/apache/apache2.pid" 2>/dev/null || true)
        [ -n "$apache_pid" ] && break
        sleep 0.1
    done
    for ((i = 0; i < nrs; i++)); do
        wait_http "http://127.0.0.1:${ports[$((i + 1))]}/health" "$timeout" "$apache_pid" || ok=0
    done
    if [ "$ok" != 1 ] || [ -z "$apache_pid" ]; then
        say "resource servers did not become ready; error log:"
        tail -20 "$dir/logs/rs-error.log" >&2 || true
        [ -z "$apache_pid" ] || stop_pid "$apache_pid" "$dir/rs.conf" apache2
        stop_pid "$as_pid" as.mjs "authorization server"
        exit 1
    fi
    say "resource servers up: ${rs_names[*]} (apache pid $apache_pid)"

    # --- lab.env -----------------------------------------------------------
    local envf="$dir/lab.env.tmp"
    {
        echo "# tokentrail lab $(date -u +%Y-%m-%dT%H:%M:%SZ) - source this file"
        echo "LAB_DIR='$dir'"
        echo "AS_URL='$as_url'"
        echo "AS_PORT=$as_port"
        echo "AS_PID=$as_pid"
        echo "AS_TOKEN_URL='$as_url/token'"
        echo "AS_INTROSPECT_URL='$as_url/token/introspection'"
        echo "AS_REVOKE_URL='$as_url/token/revocation'"
        echo "AS_DEVICE_AUTH_URL='$as_url/device/auth'"
        echo "AS_APPROVE_URL='$as_url/lab/approve'"
        echo "AS_LOG='$dir/logs/as.log'"
        echo "AS_EVENTS_LOG='$dir/logs/as-events.jsonl'"
        echo "LAB_RESOURCE='$RESOURCE'"
        echo "LAB_RESOURCE_SCOPES='$RESOURCE_SCOPES'"
        echo "LAB_ACCESS_TTL=${LAB_ACCESS_TTL:-300}"
        echo "LAB_APPROVE_SECRET_FILE='$dir/secrets/approve.secret'"
        echo "APACHE_PID=$apache_pid"
        echo "APACHE_CONF='$dir/rs.conf'"
        echo "RS_ACCESS_LOG='$dir/logs/rs-access.jsonl'"
        echo "RS_ERROR_LOG='$dir/logs/rs-error.log'"
        echo "RS_NAMES='${rs_names[*]}'"
        for ((i = 0; i < nrs; i++)); do
            local v
            v=$(env_name "${rs_names[$i]}")
            echo "${v}_URL='http://127.0.0.1:${ports[$((i + 1))]}'"
            echo "${v}_API='http://127.0.0.1:${ports[$((i + 1))]}/api/orders'"
            echo "${v}_PORT=${ports[$((i + 1))]}"
            echo "${v}_EXPIRY=${rs_expiry[$i]}"
            echo "${v}_CLIENT_ID='${rs_names[$i]}'"
            echo "${v}_SECRET_FILE='$dir/secrets/${rs_names[$i]}.secret'"
        done
        for c in tt-svc tt-batch tt-exchanger tt-admin; do
            local v
            v=CLIENT_$(env_name "${c#tt-}")
            echo "${v}_ID='$c'"
            echo "${v}_SECRET_FILE='$dir/secrets/$c.secret'"
        done
        echo "CLIENT_DEVICE_ID='tt-device'"
    } >"$envf"
    # --- forwarder to a tokentrail collector (optional) ----------------------
    if [ -n "${LAB_COLLECTOR_URL:-}" ]; then
        (
            unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy
            exec node "$LAB_HOME/forward.mjs" "$LAB_COLLECTOR_URL" "$dir/logs/as-events.jsonl" \
                "$dir/logs/rs-access.jsonl" ${LAB_COLLECTOR_TOKEN_FILE:+"$LAB_COLLECTOR_TOKEN_FILE"} \
                </dev/null >>"$dir/logs/forward.log" 2>&1
        ) &
        local fwd_pid=$!
        echo "$fwd_pid" >"$dir/forward.pid"
        echo "FORWARDER_PID=$fwd_pid" >>"$envf"
        echo "FORWARD_LOG='$dir/logs/forward.log'" >>"$envf"
        say "forwarding token events to $LAB_COLLECTOR_URL (pid $fwd_pid)"
    fi
    mv "$envf" "$dir/lab.env"
    say "ready: $dir/lab.env"
}

# ---------------------------------------------------------------------------
cmd_stop() {
    local dir=${1:-}
    [ -n "$dir" ] || die "usage: lab.sh stop DIR"
    [ -d "$dir" ] || { say "nothing to stop in $dir"; return 0; }
    dir=$(cd "$dir" && pwd)
    local as_pid="" apache_pid=""
    if [ -f "$dir/lab.env" ]; then
        as_pid=$(sed -n 's/^AS_PID=//p' "$dir/lab.env")
        apache_pid=$(sed -n 's/^APACHE_PID=//p' "$dir/lab.env")
    fi
    [ -n "$as_pid" ] || as_pid=$(cat "$dir/as.pid" 2>/dev/null || true)
    [ -n "$apache_pid" ] || apache_pid=$(cat "$dir/apache/apache2.pid" 2>/dev/null || true)
    # Resource servers first (they call the AS), then the AS, then the
    # forwarder (it sends what is left on TERM).
    [ -z "$apache_pid" ] || stop_pid "$apache_pid" "$dir/rs.conf" "apache2"
    [ -z "$as_pid" ] || stop_pid "$as_pid" "as.mjs" "authorization server"
    local fwd_pid
    fwd_pid=$(cat "$dir/forward.pid" 2>/dev/null || true)
    [ -z "$fwd_pid" ] || stop_pid "$fwd_pid" "forward.mjs" "event forwarder"
    touch "$dir/stopped"
    return 0
}

cmd_status() {
    local dir=${1:-}
    if [ -z "$dir" ] || [ ! -f "$dir/lab.env" ]; then
        echo "no lab.env in ${dir:-?}"
        return 1
    fi
    dir=$(cd "$dir" && pwd)
    local as_pid apache_pid rc=0
    as_pid=$(sed -n 's/^AS_PID=//p' "$dir/lab.env")
    apache_pid=$(sed -n 's/^APACHE_PID=//p' "$dir/lab.env")
    if pid_matches "$as_pid" as.mjs; then echo "as: running (pid $as_pid)"; else echo "as: stopped"; rc=1; fi
    if pid_matches "$apache_pid" "$dir/rs.conf"; then echo "apache: running (pid $apache_pid)"; else echo "apache: stopped"; rc=1; fi
    return $rc
}

case "${1:-}" in
    deps) cmd_deps ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    *) echo "usage: lab.sh deps | start DIR | stop DIR | status DIR" >&2; exit 2 ;;
esac
