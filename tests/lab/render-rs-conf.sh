#!/usr/bin/env bash
# Render rs.conf.in into a private, self-contained Apache config. Installs nothing.
#
# usage: render-rs-conf.sh OUT_CONF RUN_DIR LOG_DIR WWW_DIR AS_URL RS_SPEC...
#   RS_SPEC = name:port:expiry:client_id:client_secret_file
#
# Writes OUT_CONF (mode 0600: it holds the RS introspection secrets) and the
# static JSON bodies in WWW_DIR. Env: LAB_RS_LOGLEVEL (default "warn"),
# LAB_RS_CACHE_ENTRIES (per-RS shm cache size, default 10000).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmpl="$here/rs.conf.in"

if [ $# -lt 6 ]; then
    echo "usage: $0 OUT_CONF RUN_DIR LOG_DIR WWW_DIR AS_URL RS_SPEC..." >&2
    exit 2
fi
out=$1 run_dir=$2 log_dir=$3 www_dir=$4 as_url=$5
shift 5

modules_dir=${LAB_APACHE_MODULES:-/usr/lib/apache2/modules}
log_level=${LAB_RS_LOGLEVEL:-warn}
cache_entries=${LAB_RS_CACHE_ENTRIES:-10000}

die() { echo "render-rs-conf: $*" >&2; exit 1; }
safe_path() { [[ $1 =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "unsupported characters in path: $1"; }
safe_path "$run_dir"; safe_path "$log_dir"; safe_path "$www_dir"; safe_path "$modules_dir"; safe_path "$out"
[[ $as_url =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || die "AS_URL must be http://127.0.0.1:PORT, got $as_url"
[[ $log_level =~ ^[a-z0-9_:\ ]+$ ]] || die "bad LAB_RS_LOGLEVEL"
[[ $cache_entries =~ ^[0-9]+$ ]] || die "bad LAB_RS_CACHE_ENTRIES"
[ -f "$modules_dir/mod_oauth2.so" ] || die "$modules_dir/mod_oauth2.so missing (run: lab.sh deps)"

mkdir -p "$run_dir" "$log_dir" "$www_dir"

sub_common() {
    sed -e "s|@RUN_DIR@|$run_dir|g" -e "s|@LOG_DIR@|$log_dir|g" -e "s|@WWW_DIR@|$www_dir|g" \
        -e "s|@MODULES_DIR@|$modules_dir|g" -e "s|@AS_URL@|$as_url|g" -e "s|@CONF@|$out|g" \
        -e "s|@LOG_LEVEL@|$log_level|g" -e "s|@RS_CACHE_ENTRIES@|$cache_entries|g"
}

head_part=$(awk '/^# RS-BEGIN/{exit} {print}' "$tmpl")
block=$(awk '/^# RS-BEGIN/{on=1; next} /^# RS-END/{on=0} on{print}' "$tmpl")
tail_part=$(awk 'f{print} /^# RS-END/{f=1}' "$tmpl")
[ -n "$block" ] || die "no RS-BEGIN/RS-END block in $tmpl"

umask 077
tmp="$out.tmp.$$"
{
    printf '%s\n' "$head_part" | sub_common
    for spec in "$@"; do
        IFS=: read -r name port expiry client_id secret_file <<<"$spec"
        [[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad RS name: $name"
        [[ $port =~ ^[0-9]+$ ]] || die "bad port for $name: $port"
        [[ $expiry =~ ^[0-9]+$ ]] || die "bad expiry for $name: $expiry (whole seconds)"
        [[ $client_id =~ ^[A-Za-z0-9._-]+$ ]] || die "bad client_id for $name"
        secret=$(cat "$secret_file")
        [[ $secret =~ ^[A-Za-z0-9_-]+$ ]] || die "secret for $name must be base64url"
        cache="cache_${name//-/_}"
        printf '%s\n' "$block" | sub_common | sed -e "s|@RS_NAME@|$name|g" -e "s|@RS_PORT@|$port|g" \
            -e "s|@RS_EXPIRY@|$expiry|g" -e "s|@RS_CLIENT_ID@|$client_id|g" \
            -e "s|@RS_CLIENT_SECRET@|$secret|g" -e "s|@RS_CACHE@|$cache|g"
        umask 022
        printf '{"ok":true,"rs":"%s","cache_expiry_s":%s}\n' "$name" "$expiry" >"$www_dir/$name.json"
        umask 077
    done
    printf '%s\n' "$tail_part" | sub_common
} >"$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    grep -n '@[A-Z_]*@' "$tmp" >&2
    rm -f "$tmp"
    die "unsubstituted placeholders"
fi
mv "$tmp" "$out"
umask 022
printf '{"ok":true}\n' >"$www_dir/health.json"
chmod 0755 "$www_dir"
chmod 0644 "$www_dir"/*.json
