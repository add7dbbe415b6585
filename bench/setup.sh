#!/usr/bin/env bash
# Installs what the benchmarks drive, from Debian packages: the test peers (docker-registry,
# skopeo, ...), nginx (the static-file limit), wrk, ab (apache2-utils, for HEAD load) and curl.
# Makes sure no packaged nginx service keeps running (each benchmark starts its own on a free
# loopback port). Idempotent; needs root only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup/install-peers.sh

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v ab >/dev/null || need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "bench/setup: need root to install ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx-light is the smallest build with sendfile; newer Debian releases dropped it.
  if [[ " ${need[*]} " == *" nginx "* ]] && apt-cache show nginx-light >/dev/null 2>&1; then
    need=("${need[@]/#nginx/nginx-light}")
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The package's service (systemd unit or init script) would hold :80 and run for nothing.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx
fi
pidfile=/run/nginx.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  start-stop-daemon --stop --quiet --retry 10 --pidfile "$pidfile" --exec /usr/sbin/nginx || true
fi
exit 0
