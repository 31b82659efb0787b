#!/usr/bin/env bash
# A real Orthanc (Debian's orthanc and orthanc-dicomweb packages), the peer
# of the interop tests (cmd/dicomseal/orthanc_e2e_test.go), on loopback only.
#
#   eval "$(scripts/orthanc.sh install)"  installs both packages when missing
#                                         (seconds, once) without letting
#                                         the package's own service run, and
#                                         prints the exports the tests read:
#                                         DICOMSEAL_TEST_ORTHANC (the Orthanc
#                                         binary) and
#                                         DICOMSEAL_TEST_ORTHANC_DICOMWEB (the
#                                         DICOMweb plugin)
#   eval "$(scripts/orthanc.sh start)"    installs, then starts an Orthanc of
#                                         its own (for a person, or to try
#                                         testdata/ohif against Orthanc's own
#                                         DICOMweb server) and prints
#                                         DICOMSEAL_ORTHANC_URL, _USER,
#                                         _PASSWORD, _PID and _DIR
#   scripts/orthanc.sh stop PID DIR       stops it and removes its storage
#
# The tests start their own Orthanc, one per test, from the two paths: only
# a test knows its dicomseal server's address and tokens, and its own
# Orthanc keeps one test's studies and jobs apart from another's. `start`
# writes the same configuration as the tests (orthanc_helpers_test.go):
# HTTP on a free port, no DICOM port, storage in a temporary directory, the
# DICOMweb plugin at /dicom-web/. Orthanc 1.10 has no bind address: it
# listens on every interface, so RemoteAccessAllowed false refuses other
# hosts and a random user (DICOMSEAL_ORTHANC_USER, _PASSWORD; HTTP Basic)
# everyone else. When DICOMSEAL_ORTHANC_TARGET is set (dicomseal's DICOMweb
# base, e.g. http://127.0.0.1:8080/dicomweb/) it also registers dicomseal
# as two DICOMweb servers, separating duties: `dicomseal` with
# DICOMSEAL_ORTHANC_VIEWER_TOKEN (QIDO and WADO) and `dicomseal-stow` with
# DICOMSEAL_ORTHANC_INGEST_TOKEN (STOW). A running Orthanc takes more with
# PUT /dicom-web/servers/{name} {"Url": …, "HttpHeaders": {…}}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

bin=/usr/sbin/Orthanc

if [ "${1:-}" = stop ]; then
  kill "$2" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$2" 2>/dev/null || true
  rm -rf "$3"
  exit 0
fi
case "${1:-}" in install | start) ;; *) die "usage: scripts/orthanc.sh install | start | stop PID DIR" ;; esac

# plugin is the DICOMweb plugin the package installed (empty when it is not).
plugin() { dpkg -L orthanc-dicomweb 2>/dev/null | grep -m1 '/libOrthancDicomWeb\.so$' || true; }

# The packages' maintainer scripts start the orthanc service (invoke-rc.d):
# a policy-rc.d answering 101 forbids it for the install, then whatever
# did start anyway is stopped — by the PID the init script records, never
# with `/etc/init.d/orthanc stop`, whose start-stop-daemon --exec stops
# every /usr/sbin/Orthanc on the machine, the tests' too — and the service
# is disabled. Our Orthanc runs only as the tests' child.
install_orthanc() {
  local policy=/usr/sbin/policy-rc.d saved=""
  log "installing Orthanc (Debian packages orthanc, orthanc-dicomweb, orthanc-python)"
  apt_ready
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    as_root cp -p "$policy" "$saved"
  fi
  # shellcheck disable=SC2064 # restore what is there now
  trap "if [ -n '$saved' ]; then as_root cp -p '$saved' '$policy'; rm -f '$saved'; else as_root rm -f '$policy'; fi" EXIT
  printf '#!/bin/sh\n# scripts/orthanc.sh: no service starts while it installs Orthanc.\nexit 101\n' |
    as_root tee "$policy" >/dev/null
  as_root chmod 755 "$policy"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb orthanc-python >&2
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now orthanc.service >&2 || true
  elif command -v deb-systemd-helper >/dev/null; then
    as_root deb-systemd-helper disable orthanc.service >/dev/null 2>&1 || true
  fi
  local pid
  pid=$(cat /run/orthanc.pid 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(as_root readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ]; then
    log "stopping the orthanc service the package started (pid $pid)"
    as_root kill "$pid" || true
    as_root rm -f /run/orthanc.pid
  fi
  if [ -x /etc/init.d/orthanc ] && command -v update-rc.d >/dev/null; then
    as_root update-rc.d orthanc disable >/dev/null 2>&1 || true
  fi
}

python_plugin=/usr/share/orthanc/plugins/libOrthancPython.so
if [ ! -x "$bin" ] || [ -z "$(plugin)" ] || [ ! -e "$python_plugin" ]; then
  install_orthanc
fi
[ -x "$bin" ] || die "Orthanc is not at $bin after installing the orthanc package"
so=$(plugin)
[ -n "$so" ] && [ -f "$so" ] || die "the DICOMweb plugin is missing (dpkg -L orthanc-dicomweb)"

if [ "$1" = install ]; then
  log "Orthanc: $("$bin" --version | head -n 1), DICOMweb plugin $so"
  [ -e "$python_plugin" ] || die "the Python plugin is missing (dpkg -L orthanc-python)"
  printf 'export DICOMSEAL_TEST_ORTHANC=%q\nexport DICOMSEAL_TEST_ORTHANC_DICOMWEB=%q\nexport DICOMSEAL_TEST_ORTHANC_PYTHON=%q\n' "$bin" "$so" "$python_plugin"
  exit 0
fi

need_curl
servers=""
if [ -n "${DICOMSEAL_ORTHANC_TARGET:-}" ]; then
  server() { printf '"%s": {"Url": "%s", "HttpHeaders": {"Authorization": "Bearer %s"}}' "$1" "$DICOMSEAL_ORTHANC_TARGET" "$2"; }
  servers="$(server dicomseal "${DICOMSEAL_ORTHANC_VIEWER_TOKEN:?DICOMSEAL_ORTHANC_VIEWER_TOKEN is needed with DICOMSEAL_ORTHANC_TARGET}"),
      $(server dicomseal-stow "${DICOMSEAL_ORTHANC_INGEST_TOKEN:?DICOMSEAL_ORTHANC_INGEST_TOKEN is needed with DICOMSEAL_ORTHANC_TARGET}")"
fi
port=$(free_port)
dir=$(mktemp -d "${TMPDIR:-/tmp}/dicomseal-orthanc.XXXXXX")
mkdir -p "$dir/storage"
user="ci$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"

cat >"$dir/orthanc.json" <<JSON
{
  "Name": "dicomseal-peer",
  "StorageDirectory": "$dir/storage",
  "IndexDirectory": "$dir/storage",
  "HttpPort": $port,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "$user": "$password" },
  "DicomServerEnabled": false,
  "HttpTimeout": 30,
  "SaveJobs": false,
  "Plugins": ["$so"],
  "DicomWeb": {
    "Enable": true,
    "Root": "/dicom-web/",
    "Servers": { $servers }
  }
}
JSON
chmod 600 "$dir/orthanc.json"
nohup "$bin" "$dir/orthanc.json" >"$dir/orthanc.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  curl -sf -u "$user:$password" "http://127.0.0.1:$port/system" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/orthanc.log" >&2; die "Orthanc exited"; }
  sleep 0.1
done
curl -sf -u "$user:$password" "http://127.0.0.1:$port/system" >/dev/null || die "Orthanc does not answer on 127.0.0.1:$port (log: $dir/orthanc.log)"
log "Orthanc ready on 127.0.0.1:$port (pid $pid), DICOMweb at /dicom-web/"
cat <<ENV
export DICOMSEAL_ORTHANC_URL=http://127.0.0.1:$port
export DICOMSEAL_ORTHANC_USER=$user
export DICOMSEAL_ORTHANC_PASSWORD=$password
DICOMSEAL_ORTHANC_PID=$pid
DICOMSEAL_ORTHANC_DIR=$dir
ENV
