#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 — starting the
# installed cluster, or installing Debian's postgresql first — and that the
# test administrator role exists. Prints a superuser URL for a database
# created for this run; `scripts/postgres.sh drop NAME` drops it again;
# `scripts/postgres.sh restart` restarts the server (the fault suite's).
# Idempotent; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

port=${DICOMSEAL_PG_PORT:-5432}
admin=dicomseal_ci

as_postgres() { as_root su postgres -s /bin/sh -c "$*"; }

if [ "${1:-}" = drop ]; then
  as_postgres "psql -q -p $port -c 'DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)'" >&2
  exit 0
fi

# The fault suite restarts the server under load: a fast shutdown cuts
# every connection, then it waits until PostgreSQL answers again.
if [ "${1:-}" = restart ]; then
  # The cluster on our port, whichever version it is.
  cluster=$(pg_lsclusters --no-header | awk -v p="$port" '$3 == p { print $1, $2; exit }')
  [ -n "$cluster" ] || die "no PostgreSQL cluster of this machine listens on port $port (pg_lsclusters)"
  # shellcheck disable=SC2086 # "version name"
  as_root pg_ctlcluster --skip-systemctl-redirect $cluster restart -m fast >&2
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && exit 0
    sleep 0.5
  done
  die "PostgreSQL did not come back on 127.0.0.1:$port"
fi

if ! pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL (Debian package postgresql)"
    apt_ready
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || die "PostgreSQL does not answer on 127.0.0.1:$port"
fi

# A superuser with a password works whatever pg_hba.conf asks of TCP
# clients (trust or scram); it is made over the local socket as postgres.
pwfile="$DICOMSEAL_CACHE/pg-admin-password"
[ -s "$pwfile" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile")
pw=$(cat "$pwfile")
as_postgres "psql -q -v ON_ERROR_STOP=1 -p $port" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$admin') THEN
    CREATE ROLE $admin LOGIN SUPERUSER;
  END IF;
END \$\$;
ALTER ROLE $admin PASSWORD '$pw';
SQL

db="dicomseal_run_$(date +%s)_$$"
as_postgres "psql -q -v ON_ERROR_STOP=1 -p $port -c 'CREATE DATABASE $db OWNER $admin'" >&2
echo "postgres://$admin:$pw@127.0.0.1:$port/$db?sslmode=disable"
