# Shared helpers for the project's scripts (sourced, not run).
DICOMSEAL_CACHE=${DICOMSEAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dicomseal}
mkdir -p "$DICOMSEAL_CACHE"

log() { printf '%s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

# apt_ready refreshes Debian's package lists once per run when they are empty or stale.
apt_ready() {
  if [ -z "${_APT_UPDATED:-}" ]; then
    log "apt-get update"
    as_root apt-get update -qq >&2 || die "apt-get update failed"
    _APT_UPDATED=1
  fi
}

# need_curl installs curl (Debian's package) when it is missing.
need_curl() {
  command -v curl >/dev/null || { apt_ready; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2; }
}

# free_port prints a loopback TCP port nobody listens on.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}

# start_test_services makes sure PostgreSQL answers and makes a database
# for this run, starts a MinIO server, exports the DICOMSEAL_TEST_* the
# tests read, and drops and stops both when the calling script exits.
start_test_services() {
  step "PostgreSQL"
  export DICOMSEAL_TEST_DATABASE_URL
  DICOMSEAL_TEST_DATABASE_URL=$(scripts/postgres.sh)
  run_db=${DICOMSEAL_TEST_DATABASE_URL##*/}
  run_db=${run_db%%\?*}
  log "PostgreSQL: database $run_db on 127.0.0.1"

  step "MinIO"
  eval "$(scripts/minio.sh start)"
  trap 'scripts/minio.sh stop "$DICOMSEAL_MINIO_PID" "$DICOMSEAL_MINIO_DIR"; scripts/postgres.sh drop "$run_db"' EXIT
}
