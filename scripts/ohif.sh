#!/usr/bin/env bash
# Makes sure the OHIF replay harness (testdata/ohif: OHIF Viewer v3's
# DICOMweb requests, made with the dicomweb-client it pins) can run:
# Node.js present (Debian's nodejs and npm otherwise), and its packages
# installed with `npm ci` from the committed package-lock.json — only when
# the lock file changed since the last install; npm's cache lives under
# ${DICOMSEAL_CACHE:-~/.cache/dicomseal}/npm. Idempotent.
#
#   eval "$(scripts/ohif.sh)"   prints DICOMSEAL_TEST_OHIF_REPLAY, the path
#                               of replay.mjs the interop tests run
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

dir=testdata/ohif
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing Node.js (Debian packages nodejs, npm)"
  apt_ready
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi

stamp="$dir/node_modules/.dicomseal-lock.sha256"
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci in $dir (node $(node --version))"
  (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline --cache "$DICOMSEAL_CACHE/npm" >&2)
  echo "$want" >"$stamp"
fi
printf 'export DICOMSEAL_TEST_OHIF_REPLAY=%q\n' "$PWD/$dir/replay.mjs"
