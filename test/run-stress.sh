#!/usr/bin/env bash
# The long reliability runs, `npm run test:stress` (about 15 minutes; CI does not run them, it
# runs the bounded versions in `npm test`): 200 SIGKILLs of a real berth, 1,000 connections
# for 60 s, a 5xx storm over the whole backoff schedule, and the hostile-input properties
# with 20 times the runs. File arguments (dist/test/stress/x.stress.js) run just those.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup/install-peers.sh
# `npm run test:stress` has just built.
if [ "${npm_lifecycle_event:-}" != test:stress ]; then npx tsc -p .; fi
# 1,000 client sockets in this process and 1,000 in berth, plus its open blobs.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export BERTH_FUZZ_SCALE=20
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(find test/stress -name '*.stress.ts' | sort | sed -e 's#^#dist/#' -e 's#\.ts$#.js#')
  files+=(dist/test/reliability/hostile-input.test.js)
fi
. test/setup/s3-for-run.sh
node --test --test-reporter=spec --test-concurrency=1 --test-timeout=3600000 "${files[@]}"
