#!/usr/bin/env bash
# Runs dicomseal's whole test suite, as CI does (.ci/run calls this script).
#
# It fetches what the tests need and is safe to run again: pydicom's test
# files (from Debian's python3-pydicom package, extracted, never installed)
# are cached under ${DICOMSEAL_CACHE:-~/.cache/dicomseal}. Services are
# started on loopback only. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "Go modules"
go mod download

export DICOMSEAL_TEST_PYDICOM_DIR
DICOMSEAL_TEST_PYDICOM_DIR=$(scripts/pydicom-corpus.sh)
log "pydicom test files: $DICOMSEAL_TEST_PYDICOM_DIR"

step "go vet"
go vet ./...

step "go test -race"
go test -race -count=1 "$@" ./...
