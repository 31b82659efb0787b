#!/usr/bin/env bash
# A real MinIO server for the tests, on loopback only.
#
#   eval "$(scripts/minio.sh start)"   builds MinIO once if missing (go install,
#                                      about 3 minutes; cached outside the repo),
#                                      starts it on a free 127.0.0.1 port with a
#                                      temporary data directory and random
#                                      credentials, waits until it is ready and
#                                      prints the DICOMSEAL_TEST_S3_* exports
#   scripts/minio.sh stop PID DIR      stops it and removes its data
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

version=v0.0.0-20260212201848-7aac2a2c5b7c
bin="$DICOMSEAL_CACHE/bin/minio"

if [ "${1:-}" = stop ]; then
  kill "$2" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$2" 2>/dev/null || true
  rm -rf "$3"
  exit 0
fi
[ "${1:-}" = start ] || die "usage: scripts/minio.sh start | stop PID DIR"

if [ ! -x "$bin" ]; then
  log "building MinIO $version with go install (about 3 minutes, once)"
  GOBIN="$DICOMSEAL_CACHE/bin" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$version" >&2
fi
need_curl
port=$(free_port)
console=$(free_port)
dir=$(mktemp -d "${TMPDIR:-/tmp}/dicomseal-minio.XXXXXX")
user="ci$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secret="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$secret" MINIO_BROWSER=off \
  nohup "$bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" "$dir/data" \
  > "$dir/minio.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/minio.log" >&2; die "MinIO exited"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null || die "MinIO not ready on 127.0.0.1:$port"
log "MinIO ready on 127.0.0.1:$port (pid $pid)"
cat <<ENV
export DICOMSEAL_TEST_S3_ENDPOINT=127.0.0.1:$port
export DICOMSEAL_TEST_S3_ACCESS_KEY=$user
export DICOMSEAL_TEST_S3_SECRET_KEY=$secret
export DICOMSEAL_TEST_MINIO_BIN=$bin
DICOMSEAL_MINIO_PID=$pid
DICOMSEAL_MINIO_DIR=$dir
ENV
