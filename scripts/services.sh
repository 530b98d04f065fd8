#!/usr/bin/env bash
# Make sure the services the tests talk to are reachable, starting (or installing, from
# Debian's packages) what is missing. Under CI=true a service that stays unreachable fails.
# Services: PostgreSQL (the registry's team database; plpython3u for in-database scoring) and
# Redis (the batch cache of scores, streams), NATS JetStream (streams).
set -u

PG_URL=${SCOREHOUSE_TEST_PG:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "services: $*"; }

apt_install() {  # packages; refreshes the package lists only when a first try fails
  $SUDO apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "$@" >/dev/null; }
}

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
  apt_install postgresql postgresql-contrib  # PL/Python follows in ensure_plpython
  return 0
}

ensure_postgres() {
  if pg_ready; then say "PostgreSQL ok ($PG_URL)"; return 0; fi
  say "PostgreSQL not reachable at $PG_URL; starting it"
  pg_start && { say "PostgreSQL started"; return 0; }
  pg_install && pg_start && { say "PostgreSQL installed and started"; return 0; }
  return 1
}

REDIS_URL=${SCOREHOUSE_TEST_REDIS:-redis://127.0.0.1:6379/15}

redis_ready() {
  "$PY" - "$REDIS_URL" <<'PYEOF' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
PYEOF
}

redis_start() {
  command -v redis-server >/dev/null 2>&1 || return 1
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp >/dev/null 2>&1 || return 1
  for _ in $(seq 1 20); do redis_ready && return 0; sleep 0.5; done
  return 1
}

ensure_redis() {
  if redis_ready; then say "Redis ok ($REDIS_URL)"; return 0; fi
  say "Redis not reachable at $REDIS_URL; starting it"
  redis_start && { say "Redis started"; return 0; }
  say "installing Redis from Debian's packages"
  apt_install redis-server && redis_start && { say "Redis installed and started"; return 0; }
  return 1
}

plpython_ready() {
  "$PY" - "$PG_URL" <<'PYEOF' >/dev/null 2>&1
import sys, psycopg
with psycopg.connect(sys.argv[1], connect_timeout=3) as c:
    c.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u'").fetchone()[0]
PYEOF
}

ensure_plpython() {
  if plpython_ready; then say "PL/Python ok"; return 0; fi
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  say "installing PL/Python (postgresql-plpython3-$ver) from Debian's packages"
  apt_install "postgresql-plpython3-$ver" && plpython_ready
}

NATS_HOSTPORT=127.0.0.1:4222

nats_ready() { (echo > "/dev/tcp/${NATS_HOSTPORT%:*}/${NATS_HOSTPORT#*:}") >/dev/null 2>&1; }

nats_start() {
  command -v nats-server >/dev/null 2>&1 || return 1
  mkdir -p /tmp/scorehouse-nats
  # JetStream on (-js), data under /tmp: the tests create and delete their own streams.
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/scorehouse-nats >/dev/null 2>&1 &
  for _ in $(seq 1 20); do nats_ready && return 0; sleep 0.5; done
  return 1
}

ensure_nats() {
  if nats_ready; then say "NATS ok ($NATS_HOSTPORT)"; return 0; fi
  say "NATS not reachable at $NATS_HOSTPORT; starting it"
  nats_start && { say "NATS started"; return 0; }
  say "installing NATS from Debian's packages"
  apt_install nats-server && nats_start && { say "NATS installed and started"; return 0; }
  return 1
}

require() {  # name, ensure-function
  "$2" && return 0
  if [ "${CI:-}" = "true" ]; then
    say "FAILED: $1 is required under CI=true and could not be reached or started"
    status=1
  else
    say "warning: $1 unavailable; its tests will be skipped (set CI=true to fail)"
  fi
}

status=0
require Redis ensure_redis
require "NATS (JetStream)" ensure_nats
require PostgreSQL ensure_postgres && require "PL/Python (plpython3u)" ensure_plpython
exit $status
