#!/usr/bin/env bash
# Make sure the services the tests talk to are reachable, starting (or installing, from
# Debian's packages) what is missing. Under CI=true a service that stays unreachable fails.
# Also Debian's chromium, for the tests that drive pages in a real browser, and podman.
# Services: PostgreSQL (the registry's team database; plpython3u for in-database scoring) and
# Redis (the batch cache of scores, streams), NATS JetStream (streams), and a Java runtime
# for Spark's local mode (pyspark itself comes from PyPI).
set -u

PG_URL=${SCOREHOUSE_TEST_PG:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "services: $*"; }

wait_for() {  # ready-function, tries (half a second apart)
  for _ in $(seq 1 "$2"); do "$1" && return 0; sleep 0.5; done
  return 1
}

ensure() {  # name, where, ready-function, start-function, Debian packages
  if "$3"; then say "$1 ok ($2)"; return 0; fi
  say "$1 not reachable at $2; starting it"
  "$4" && { say "$1 started"; return 0; }
  say "installing $1 from Debian's packages"
  # shellcheck disable=SC2086 # $5 is a list of packages
  apt_install $5 && "$4" && { say "$1 installed and started"; return 0; }
  return 1
}

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
  wait_for pg_ready 60 && return 0
  # A fresh Debian cluster asks TCP clients for a password: give the test role one.
  $SUDO su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1
  pg_ready
}

# PL/Python follows in ensure_plpython, once the server's version is known.
ensure_postgres() { ensure PostgreSQL "$PG_URL" pg_ready pg_start "postgresql postgresql-contrib"; }

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
  wait_for redis_ready 20
}

ensure_redis() { ensure Redis "$REDIS_URL" redis_ready redis_start redis-server; }

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
  wait_for nats_ready 20
}

ensure_nats() { ensure NATS "$NATS_HOSTPORT" nats_ready nats_start nats-server; }

java_ready() { java -version >/dev/null 2>&1; }

# pyspark 4 needs Java 17 or newer; Debian 12 ships 17 (later releases a newer default).
ensure_java() {
  if java_ready; then say "Java ok ($(java -version 2>&1 | head -n 1))"; return 0; fi
  say "installing a Java runtime for Spark from Debian's packages"
  apt_install openjdk-17-jre-headless || apt_install default-jre-headless
  java_ready
}

chromium_ready() { command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; }

# Pages are tested in Debian's chromium, driven by Playwright (Playwright's own browser
# download is not used).
ensure_chromium() {
  if chromium_ready; then say "chromium ok ($(chromium --version 2>/dev/null))"; return 0; fi
  say "installing chromium from Debian's packages"
  apt_install chromium && chromium_ready
}

tools_ready() { command -v jq >/dev/null && command -v curl >/dev/null && command -v redis-cli >/dev/null; }

# The README's examples, which the tests run as written, use jq, curl and redis-cli.
ensure_tools() {
  if tools_ready; then say "jq, curl, redis-cli ok"; return 0; fi
  say "installing jq, curl, redis-tools from Debian's packages"
  apt_install jq curl redis-tools && tools_ready
}

podman_ready() { command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; }

# The container image test (tests/test_deploy_container.py) builds and runs an image with
# podman (runc where crun is refused), on a base image it makes with debootstrap.
ensure_podman() {
  if podman_ready; then say "podman, runc, debootstrap ok"; return 0; fi
  say "installing podman, runc, debootstrap from Debian's packages"
  apt_install podman runc debootstrap && podman_ready
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
require "Java (for Spark)" ensure_java
require "chromium (browser tests)" ensure_chromium
require "jq, curl, redis-cli (README examples)" ensure_tools
require "podman (container image test)" ensure_podman
require PostgreSQL ensure_postgres && require "PL/Python (plpython3u)" ensure_plpython
exit $status
