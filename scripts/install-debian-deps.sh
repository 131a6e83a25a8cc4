#!/usr/bin/env bash
# Debian packages the bundle's tests and demo start for real. Idempotent; needs root (or sudo).
set -euo pipefail
packages=(
  make python3-venv
  prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-redis-exporter
  redis-server redis-tools mariadb-server nginx
  chromium fonts-noto-cjk faketime openssl
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packages start system services we do not rely on (tests start their own on free ports).
