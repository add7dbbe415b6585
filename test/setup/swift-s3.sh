#!/usr/bin/env bash
# swift-s3.sh — a real S3 endpoint on loopback for berth's tests and benchmarks: OpenStack
# Swift (Debian bookworm's 2.30) with its s3api middleware and tempauth, one replica on one
# directory-backed device, everything (configs, rings, data, pids, logs) under DATADIR.
#
#   swift-s3.sh start DATADIR [PORT [BUCKET]]   PORT 0 or absent: a free loopback port; BUCKET is created
#   swift-s3.sh stop  DATADIR          ends the daemons DATADIR/run/*.pid names
#   swift-s3.sh sweep PARENT           stops and removes PARENT/berth-s3.* whose owner died
#
# `start` installs the packages when missing (root), starts the daemons, waits until a signed
# S3 request answers, and prints shell assignments on stdout (progress goes to stderr):
#   S3_ENDPOINT=http://127.0.0.1:PORT S3_ACCESS_KEY_ID=test:tester S3_SECRET_ACCESS_KEY=testing
#   S3_REGION=us-east-1
# DATADIR/owner may hold the pid of the process the daemons serve (test/run.sh writes it):
# `sweep` removes a DATADIR whose owner is gone, so a killed test run leaves nothing behind.
#
# What clients must know (berth's S3 driver does all of it): path-style addressing only;
# Swift's s3api predates the SDK's default integrity checksums, so checksums are sent and
# validated only when required; DeleteObjects needs Content-MD5; conditional PUTs
# (If-None-Match) are refused; there are no lifecycle rules (nothing aborts multipart uploads
# but the client); listings may lag writes.
set -euo pipefail

PY=/usr/bin/python3   # Debian's python, which has swift; not a shim earlier in PATH
log() { echo "swift-s3: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { die "usage: $0 start DATADIR [PORT [BUCKET]] | stop DATADIR | sweep PARENT"; }

[ $# -ge 2 ] || usage
cmd=$1

# alive PIDFILE DIR: the recorded process runs and its command line names DIR
alive() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$2/"* ]]
}
running() { local st=""; read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" && [ "$st" != Z ]; }

stop_all() { # stop_all DIR
  local f pid pids=() run=$1/run
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    alive "$f" "$1" || continue
    pid=$(cat "$f")
    case $f in
      */memcached.pid) kill -KILL "$pid" 2>/dev/null || true ;;   # holds only tokens and caches
      *) kill -TERM "$pid" 2>/dev/null && pids+=("$pid") ;;
    esac
  done
  for _ in $(seq 100); do
    local left=0
    for pid in "${pids[@]}"; do running "$pid" && left=1; done
    [ $left = 0 ] && break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do running "$pid" && kill -KILL "$pid" 2>/dev/null; done
  rm -f "$run"/*.pid "$run/memcached.ownpid"
  return 0
}

case $cmd in
stop)
  [ -d "$2" ] || exit 0
  stop_all "$(cd "$2" && pwd)"
  exit 0 ;;
sweep)
  for d in "$2"/berth-s3.*; do
    [ -d "$d" ] || continue
    owner=$(cat "$d/owner" 2>/dev/null || true)
    if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
    # Not yet owned: a start in progress, unless it is old.
    if [ -z "$owner" ] && [ -n "$(find "$d" -maxdepth 0 -mmin -10)" ]; then continue; fi
    stop_all "$d"
    rm -rf "$d"
  done
  exit 0 ;;
start) ;;
*) usage ;;
esac

dir=$(mkdir -p "$2" && cd "$2" && pwd) || die "cannot use DATADIR $2"
port=${3:-0}
bucket=${4:-}
[[ $port =~ ^[0-9]+$ ]] || usage
[ -z "$bucket" ] || [[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "not a bucket name: $bucket"
run=$dir/run
conf=$dir/conf

# s3_status PORT [METHOD PATH]: HTTP status of a SigV2-signed request as test:tester (default ListBuckets)
s3_status() {
  local d sig method=${2:-GET} path=${3:-/}
  d=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
  sig=$(printf '%s\n\n\n%s\n%s' "$method" "$d" "$path" | openssl dgst -sha1 -hmac testing -binary | base64)
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" -H "Date: $d" \
    -H "Authorization: AWS test:tester:$sig" "http://127.0.0.1:$1$path" || true
}
make_bucket() { # make_bucket PORT: creates $bucket, when given (an existing one is kept)
  [ -z "$bucket" ] && return 0
  local status
  status=$(s3_status "$1" PUT "/$bucket")
  [ "$status" = 200 ] || [ "$status" = 409 ] || die "creating bucket $bucket answered $status"
}
print_env() {
  printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_ACCESS_KEY_ID=test:tester\nS3_SECRET_ACCESS_KEY=testing\nS3_REGION=us-east-1\n' "$1"
}

if alive "$run/proxy.pid" "$dir"; then
  p=$(cat "$run/port")
  [ "$(s3_status "$p")" = 200 ] || die "a proxy for $dir runs but S3 on port $p does not answer; stop it first"
  make_bucket "$p"
  print_env "$p"
  exit 0
fi

need=()
for b in swift-proxy swift-account swift-container swift-object; do [ -x "/usr/bin/$b-server" ] || need+=("$b"); done
[ -x /usr/bin/memcached ] || need+=(memcached)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages (${need[*]}) and not root to install them"
  log "installing ${need[*]}"
  inst() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >"$dir/apt.log" 2>&1; }
  inst || { apt-get update -q -o DPkg::Lock::Timeout=300 >>"$dir/apt.log" 2>&1 && inst; } || die "apt-get install failed, see $dir/apt.log"
fi

mkdir -p "$conf" "$run" "$dir/srv/d0" "$dir/log"
stop_all "$dir"
user=$(id -un)
# Ports: the proxy's (given, or free) and four free ones for the account, container and object
# servers and memcached. The three rings (one device, one replica, 16 partitions) are written
# directly in Swift's ring format v1, which is what swift-ring-builder would write, at a
# fraction of its start-up cost; with one device, data in srv/ survives a restart.
read -r port aport cport oport mport < <("$PY" -S - "$port" "$conf" <<'EOF'
import gzip, json, os, socket, struct, sys
port, conf = int(sys.argv[1]), sys.argv[2]
socks = [socket.socket() for _ in range(5)]
try:
    socks[0].bind(("127.0.0.1", port))
except OSError as e:
    sys.exit("swift-s3: port %d is not free: %s" % (port, e))
for s in socks[1:]: s.bind(("127.0.0.1", 0))
ports = [s.getsockname()[1] for s in socks]
part_power = 4
for name, p in zip(("account", "container", "object"), ports[1:4]):
    meta = json.dumps({"byteorder": sys.byteorder, "part_shift": 32 - part_power, "replica_count": 1, "version": 1,
                       "devs": [{"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": p, "device": "d0",
                                 "weight": 100.0, "meta": ""}]}, sort_keys=True).encode("ascii")
    path = "%s/%s.ring.gz" % (conf, name)
    with gzip.GzipFile(path + ".tmp", "wb", mtime=0) as f:
        f.write(struct.pack("!4sHI", b"R1NG", 1, len(meta)) + meta)
        f.write(b"\0\0" * (1 << part_power))
    os.rename(path + ".tmp", path)
print(*ports)
EOF
) || true
[ -n "${mport:-}" ] || die "cannot use port ${3:-0}"
echo "$port" >"$run/port"

# Swift reads swift.conf from /etc/swift; the daemons are started through a wrapper that points
# it at this one, so nothing outside DATADIR is read or changed.
printf '[swift-hash]\nswift_hash_path_suffix = berth\nswift_hash_path_prefix = berth\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' >"$conf/swift.conf"
declare -A bport=([account]=$aport [container]=$cport [object]=$oport)
for n in account container object; do
  cat >"$conf/$n-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${bport[$n]}
workers = 0
user = $user
swift_dir = $conf
devices = $dir/srv
mount_check = false
log_name = berth-s3-$n
[pipeline:main]
pipeline = healthcheck $n-server
[filter:healthcheck]
use = egg:swift#healthcheck
[app:$n-server]
use = egg:swift#$n
EOF
done
cat >"$conf/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $user
swift_dir = $conf
log_name = berth-s3-proxy
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mport
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_upload_part_num = 10000
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:dlo]
use = egg:swift#dlo
EOF

export EVENTLET_NO_GREENDNS=yes   # skips eventlet's dnspython import: no names are resolved
trap 'log "start failed; logs in $dir/log"; stop_all "$dir"' ERR
trap 'log "interrupted"; stop_all "$dir"; exit 130' INT TERM
setsid memcached -u "$user" -l 127.0.0.1 -p "$mport" -U 0 -m 64 -c 1024 -P "$run/memcached.ownpid" </dev/null >"$dir/log/memcached.log" 2>&1 &
echo $! >"$run/memcached.pid"; disown $!
for n in account container object proxy; do
  setsid "$PY" -c 'import runpy, sys; from swift.common import utils
utils.SWIFT_CONF_FILE = sys.argv[1]; sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name="__main__")' \
    "$conf/swift.conf" "/usr/bin/swift-$n-server" "$conf/$n-server.conf" -v </dev/null >"$dir/log/$n.log" 2>&1 &
  echo $! >"$run/$n.pid"; disown $!
done

ok=0
want=("$aport" "$cport" "$oport" "$port")
i=0
for _ in $(seq 1200); do
  for f in "$run"/*.pid; do
    running "$(cat "$f")" || { n=$(basename "$f" .pid); log "$n exited:"; tail -5 "$dir/log/$n.log" >&2; false; }
  done
  if [ $i -lt ${#want[@]} ]; then
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${want[i]}/healthcheck" && { i=$((i + 1)); continue; }
  elif [ "$(s3_status "$port")" = 200 ]; then ok=1; break
  fi
  sleep 0.05
done
[ $ok = 1 ] || { log "S3 did not answer within 60 s"; false; }
trap - ERR INT TERM
make_bucket "$port"
log "up on 127.0.0.1:$port, data in $dir/srv${bucket:+, bucket $bucket}"
print_env "$port"
