# Sourced by test/run.sh and test/run-stress.sh: starts one Swift s3api endpoint for the run,
# exports its S3_* variables to the tests, and stops it when the run ends. A run killed before
# its trap ran leaves its DATADIR behind; the next run's sweep stops and removes it.
s3_parent=${TMPDIR:-/tmp}
bash test/setup/swift-s3.sh sweep "$s3_parent"
s3_dir=$(mktemp -d "$s3_parent/berth-s3.XXXXXX")
echo $$ >"$s3_dir/owner"
trap 'bash test/setup/swift-s3.sh stop "$s3_dir"; rm -rf "$s3_dir"' EXIT
set -a
eval "$(bash test/setup/swift-s3.sh start "$s3_dir")"
set +a
