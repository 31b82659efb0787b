#!/usr/bin/env bash
# make soak: two replicas on one PostgreSQL with MinIO, under mixed load for
# ${DICOMSEAL_SOAK:-30m} while faults strike every 10 s (a replica killed,
# PostgreSQL's connections cut, MinIO frozen or killed), then every answer
# checked against the audit trail, every object retrieved, both logs
# verified and reconcile run (TestSoak in cmd/dicomseal). Not part of CI.
# Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "Go modules"
go mod download
start_test_services

export DICOMSEAL_SOAK=${DICOMSEAL_SOAK:-30m}
step "soak for $DICOMSEAL_SOAK"
go test -tags faults -count=1 -v -timeout 0 -run '^TestSoak$' "$@" ./cmd/dicomseal
