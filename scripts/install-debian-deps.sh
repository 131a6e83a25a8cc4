#!/usr/bin/env bash
# Debian packages the bundle's tests and demo need, from a fresh Debian 12 that has nothing but bash,
# apt-get and root (or sudo): the tools the entry points use (make, git, python3 with venv, the CA
# certificates pip needs) and the servers the tests and the demo start for real. Idempotent: installs
# only what is missing, and touches nothing when everything is there.
set -euo pipefail
packages=(
  make git ca-certificates python3 python3-venv
  prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-redis-exporter
  redis-server redis-tools mariadb-server nginx
  chromium fonts-noto-cjk faketime openssl
  prometheus-nginx-exporter prometheus-node-exporter prometheus-elasticsearch-exporter
  prometheus-sql-exporter
  logrotate systemd systemd-journal-remote
  docker.io debootstrap poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
  victoria-metrics docker-compose
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: installing ${missing[*]} needs root: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packages may start system services (prometheus on 9090, redis on 6379...): nothing here relies
# on them; the tests start their own servers on free ports.
