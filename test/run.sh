#!/usr/bin/env bash
# Runs every test: installs the real peers (Debian packages), builds, then runs each
# compiled test/**/*.test.ts with node's test runner. Extra arguments go to `node --test`
# (e.g. --test-name-pattern=skopeo); file arguments (test/e2e/x.test.ts or its dist/ .js)
# run just those files.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup/install-peers.sh
# `npm test` has just built in its pretest step.
if [ "${npm_lifecycle_event:-}" != test ]; then npx tsc -p .; fi

options=()
sources=()
for arg in "$@"; do
  case "$arg" in
    *.test.ts) sources+=("$arg") ;;
    *.test.js) sources+=("$(sed -e 's#^dist/##' -e 's#\.js$#.ts#' <<<"$arg")") ;;
    *) options+=("$arg") ;;
  esac
done
# Only tests whose source still exists: a deleted test's stale .js in dist/ must not run.
[ ${#sources[@]} -gt 0 ] || mapfile -t sources < <(find test -name '*.test.ts' | sort)
files=()
for source in "${sources[@]}"; do
  compiled="dist/${source%.ts}.js"
  [ -f "$compiled" ] || { echo "run.sh: $compiled missing: did the build fail?" >&2; exit 1; }
  files+=("$compiled")
done
# One S3 endpoint (Swift's s3api on loopback) for the whole run, shared by every test file.
. test/setup/s3-for-run.sh
node --test --test-reporter=spec --test-timeout=600000 "${options[@]}" "${files[@]}"
