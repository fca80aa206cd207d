#!/usr/bin/env bash
# Starts a PostgreSQL 15 cluster of the tests' own (Debian postgresql-15) on 127.0.0.1:55432:
# a data directory under the state directory, trust authentication from 127.0.0.1 only, a
# role `botwatch` that may create databases (each test makes and drops its own). Idempotent:
# a server already answering is kept. Prints the environment the tests read.
set -euo pipefail
state="${1:-/tmp/botwatch-pg}"
port=55432
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/postgres" ] || { echo "no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }
answers() { (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; }
# PostgreSQL refuses to run as root: the cluster belongs to `postgres` when we are root.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! answers; then
  mkdir -p "$state"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$state"
  if [ ! -s "$state/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$state/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$state/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
max_connections = 200
shared_buffers = 256MB
# Test data is thrown away: no need to survive a power cut.
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$state/data/pg_hba.conf"
  fi
  as_owner "$bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 60 start >/dev/null
  as_owner "$bin/psql" -h 127.0.0.1 -p $port -U postgres -qtAc \
    "SELECT 1 FROM pg_roles WHERE rolname = 'botwatch'" | grep -q 1 \
    || as_owner "$bin/psql" -h 127.0.0.1 -p $port -U postgres -qc "CREATE ROLE botwatch LOGIN CREATEDB"
  as_owner "$bin/psql" -h 127.0.0.1 -p $port -U postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'botwatch'" | grep -q 1 \
    || as_owner "$bin/psql" -h 127.0.0.1 -p $port -U postgres -qc "CREATE DATABASE botwatch OWNER botwatch"
fi
echo "BOTWATCH_PG_URL=postgres://botwatch@127.0.0.1:$port/botwatch"
