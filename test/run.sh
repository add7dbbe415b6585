#!/usr/bin/env bash
# Runs every test: installs the real peers (Debian packages), builds, then node's test runner.
# Extra arguments are passed to `node --test` (e.g. --test-name-pattern=skopeo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup/install-peers.sh
[ -d dist ] || npm run build --silent
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-reporter=spec --test-timeout=600000 "$@" "${files[@]}"
