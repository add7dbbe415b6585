#!/usr/bin/env bash
# Installs the real peers the tests drive, from Debian packages, and makes sure the
# Debian docker-registry service is not running (the tests start their own registries on
# free ports). Idempotent; needs root.
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v containerd >/dev/null || need+=(containerd)
command -v ctr >/dev/null || need+=(containerd)
command -v podman >/dev/null || need+=(podman)
command -v openssl >/dev/null || need+=(openssl)
command -v tar >/dev/null || need+=(tar)
# docker-compose validates docker-compose.yml in test/deploy (`config` needs no Docker engine).
command -v docker-compose >/dev/null || need+=(docker-compose)
# Headless Chromium renders the status page in test/ui (driven by playwright-core).
command -v chromium >/dev/null || need+=(chromium)
# OpenStack Swift with its s3api, the real S3 endpoint of the S3 driver's tests (test/setup/swift-s3.sh).
for server in proxy account container object; do [ -x "/usr/bin/swift-$server-server" ] || need+=("swift-$server"); done
command -v memcached >/dev/null || need+=(memcached)
command -v curl >/dev/null || need+=(curl)
# Redis, which replicas coordinate through (test/support/redis-server.ts starts its own).
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-peers: need root to install ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The package's service (systemd unit, or its init script's pidfile) listens on :5000.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry
fi
pidfile=/var/run/docker-registry.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  start-stop-daemon --stop --quiet --retry 10 --pidfile "$pidfile" --exec /usr/bin/docker-registry || true
fi
exit 0
