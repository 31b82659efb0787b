#!/usr/bin/env bash
# Makes sure dcmtk (Debian's package) is installed: the verdict tests turn
# real files into real re-encodings and edits with dcmconv, dcmodify,
# dcmcjpls/dcmdjpls and dcmcjpeg/dcmdjpeg, and cross-check identifiers with
# dcm2json. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
if ! command -v dcmodify >/dev/null || ! command -v dcmcjpls >/dev/null || ! command -v dcm2json >/dev/null; then
  log "installing dcmtk"
  apt_ready
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >&2
fi
