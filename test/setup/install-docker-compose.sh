#!/usr/bin/env bash
# Installs Debian's docker-compose (1.29, Python), which the deploy tests run as
# `docker-compose config` to validate docker-compose.yml. No Docker engine is needed for
# that. Idempotent; needs root.
set -euo pipefail
command -v docker-compose >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-docker-compose: need root to install docker-compose" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
