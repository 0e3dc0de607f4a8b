#!/bin/bash
# Entrypoint of the test bench's PostgreSQL 17 + pgvector image. It honours the same variables as
# the official image (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA) so that
# backend/docker-compose.yml starts unchanged, and passes `postgres -c ...` arguments through.
set -euo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
PGBIN=/usr/lib/postgresql/17/bin

if [[ "${1:-postgres}" != postgres ]]; then
  exec "$@"
fi
[[ "${1:-}" == postgres ]] && shift

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "entrypoint: POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # A private, socket-only server for the setup, as the official image does.
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [[ "$POSTGRES_DB" != postgres ]]; then
    as_postgres "$PGBIN/psql" -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
      -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$PGDATA" "$@"
