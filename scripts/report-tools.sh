#!/usr/bin/env bash
# Makes sure the tools that read dicomseal's chain-of-custody reports as
# people do are installed (Debian's packages): poppler-utils (pdftotext
# reads the PDF's text) and chromium (renders the HTML headless and prints
# it). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
missing=()
command -v pdftotext >/dev/null || missing+=(poppler-utils)
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_ready
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
