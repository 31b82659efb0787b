#!/usr/bin/env bash
# Native ingest rate of dicomseal binaries, interleaved (BENCHMARKS.md):
#   git worktree add /tmp/old b861ef8 && (cd /tmp/old && go build -o /tmp/dicomseal-old ./cmd/dicomseal)
#   go build -o /tmp/dicomseal-new ./cmd/dicomseal
#   scripts/ingest-ab.sh 6 /tmp/dicomseal-old /tmp/dicomseal-new
# Each round starts each binary on a fresh data directory on loopback,
# makes an ingest token through its API and runs scripts/ingestload.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
shift
go build -o /tmp/ingestload ./scripts/ingestload
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    dir=$(mktemp -d)
    "$bin" serve --data-dir "$dir" --addr 127.0.0.1:18099 --log-level warn --min-free-space 1MiB 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:18099/healthz >/dev/null && break; sleep 0.1; done
    "$bin" tokens create --server http://127.0.0.1:18099 --token-file "$dir/admin.token" --role ingest --name load 2>/dev/null |
      tail -1 >"$dir/ingest.token"
    echo "round $round $bin: $(/tmp/ingestload --url http://127.0.0.1:18099 --token-file "$dir/ingest.token")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
