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
  curl jq python3 python3-yaml sqlite3 wrk openssl procps time gzip tar
  # Kafka tests: the consumer/producer CLI (the broker itself is Java, below)
  kcat
  # the drill lab's resource servers
  apache2 libapache2-mod-oauth2
  # promtool and a real Prometheus for the alert-rule tests; Alertmanager for analyze --alertmanager
  prometheus prometheus-alertmanager
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The Kafka broker runs on a JVM with jars resolved by Maven, and the lab's
# authorization server on Node.js; use the machine's own when present.
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v node >/dev/null || missing+=(nodejs npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all Debian packages present"
else
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The tests run the python3 first on PATH, which need not be Debian's: make
# sure that one can import yaml (the dashboard tests parse the rule files).
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deps: installing PyYAML for $(command -v python3)"
  python3 -m pip install --quiet pyyaml
fi

# The lab's npm packages (pinned by tests/lab/package-lock.json); quick when present.
cd "$(dirname "$0")/.."
tests/lab/lab.sh deps
echo "deps: done"
