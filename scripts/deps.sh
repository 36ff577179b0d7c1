#!/usr/bin/env bash
# deps.sh - install the Debian packages tokentrail's build and tests need.
# Does nothing (and needs no network) when they are all present.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libyaml-dev libssl-dev zlib1g-dev
  libcurl4-openssl-dev librdkafka-dev libarchive-dev libgnutls28-dev
  check
  # integration tests and benchmarks
  curl jq python3 sqlite3 wrk openssl procps
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done"
