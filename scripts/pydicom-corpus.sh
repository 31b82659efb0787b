#!/usr/bin/env bash
# Prints the directory of pydicom's test files, extracting them first from
# Debian's python3-pydicom package (downloaded, not installed) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

dest="$DICOMSEAL_CACHE/pydicom"
files="$dest/usr/lib/python3/dist-packages/pydicom/data/test_files"
if [ ! -f "$files/CT_small.dcm" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download python3-pydicom >&2 2>/dev/null); then
    apt_ready
    (cd "$work" && apt-get download python3-pydicom >&2) || die "cannot download python3-pydicom"
  fi
  rm -rf "$dest"
  dpkg -x "$work"/python3-pydicom_*.deb "$dest"
fi
[ -f "$files/CT_small.dcm" ] || die "pydicom test files not found under $dest"
echo "$files"
