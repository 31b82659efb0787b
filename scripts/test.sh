#!/usr/bin/env bash
# Runs dicomseal's whole test suite, as CI does (.ci/run calls this script).
#
# It fetches and starts what the tests need and is safe to run again:
# pydicom's test files (from Debian's python3-pydicom package, extracted,
# never installed) are cached under ${DICOMSEAL_CACHE:-~/.cache/dicomseal};
# PostgreSQL is started (or installed) on 127.0.0.1 and a database is made
# for this run and dropped after it; a MinIO server (built once with go
# install) runs on a free loopback port for the run; Orthanc and its
# DICOMweb plugin (Debian's packages) are installed for the interop tests,
# which start their own, and the OHIF replay harness's npm packages are
# installed from its lock file; poppler-utils and Chromium read the
# custody reports. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "Go modules"
go mod download

export DICOMSEAL_TEST_PYDICOM_DIR
DICOMSEAL_TEST_PYDICOM_DIR=$(scripts/pydicom-corpus.sh)
log "pydicom test files: $DICOMSEAL_TEST_PYDICOM_DIR"

step "dcmtk"
scripts/dcmtk.sh

# The custody report tests read the PDF with pdftotext and render the HTML
# in headless Chromium (cmd/dicomseal/report_e2e_test.go).
step "report readers (poppler-utils, chromium)"
scripts/report-tools.sh

# The interop tests' peers (cmd/dicomseal/orthanc_e2e_test.go, orthanc_gate_e2e_test.go): each test
# starts its own Orthanc from these paths.
# (Assigned first: `eval "$(…)"` alone would not stop on a failure.)
step "Orthanc"
peer_env=$(scripts/orthanc.sh install)
eval "$peer_env"
step "OHIF replay harness (testdata/ohif)"
peer_env=$(scripts/ohif.sh)
eval "$peer_env"

start_test_services # PostgreSQL and MinIO, stopped and dropped on exit

step "go vet"
go vet ./...
go vet -tags faults ./cmd/dicomseal

step "go test -race"
go test -race -count=1 "$@" ./...

# The fault suite (build tag faults): real processes killed, PostgreSQL's
# connections cut and the server restarted, MinIO frozen and stopped, a
# full disk — each under load, then every answer checked against the
# audit trail and both logs verified. It restarts PostgreSQL, so it runs
# on its own, after everything else that uses the database.
step "fault suite"
DICOMSEAL_TEST_PG_RESTART=1 go test -race -tags faults -count=1 -timeout 20m -run '^TestFault' "$@" ./cmd/dicomseal

# Hostile input, for a bounded time: anything the fuzzer finds fails the run
# (and its input lands in dicomfile/testdata/fuzz, to become a regression case).
step "fuzz: parse and digest path (${DICOMSEAL_FUZZTIME:=30s})"
# Minimizing each new-coverage input may take 60 s by default, longer than
# the whole run, and executes nothing new meanwhile: 5 s keeps the budget on
# fuzzing (about 30x the executions) and still shrinks crashers.
go test ./dicomfile -run '^$' -fuzz FuzzParse -fuzztime "$DICOMSEAL_FUZZTIME" -fuzzminimizetime 5s
