#!/usr/bin/env bash
# Make sure the services the tests talk to are reachable, starting (or installing, from
# Debian's packages) what is missing. Under CI=true a service that stays unreachable fails.
# Services: PostgreSQL (the registry's team database; plpython3u for in-database scoring).
set -u

PG_URL=${SCOREHOUSE_TEST_PG:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "services: $*"; }

pg_ready() {
  "$PY" - "$PG_URL" <<'PYEOF' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PYEOF
}

pg_start() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$ver" ] || return 1
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
  for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
  # A fresh Debian cluster asks TCP clients for a password: give the test role one.
  $SUDO su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1
  pg_ready
}

pg_install() {
  say "installing PostgreSQL from Debian's packages"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    postgresql postgresql-contrib >/dev/null
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$ver" ] && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    "postgresql-plpython3-$ver" >/dev/null 2>&1
  return 0
}

ensure_postgres() {
  if pg_ready; then say "PostgreSQL ok ($PG_URL)"; return 0; fi
  say "PostgreSQL not reachable at $PG_URL; starting it"
  pg_start && { say "PostgreSQL started"; return 0; }
  pg_install && pg_start && { say "PostgreSQL installed and started"; return 0; }
  return 1
}

status=0
if ! ensure_postgres; then
  if [ "${CI:-}" = "true" ]; then
    say "FAILED: PostgreSQL is required under CI=true and could not be reached or started"
    status=1
  else
    say "warning: PostgreSQL unavailable; PostgreSQL tests will be skipped (set CI=true to fail)"
  fi
fi
exit $status
