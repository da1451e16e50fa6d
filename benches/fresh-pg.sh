#!/usr/bin/env bash
# Runs a command with DATABASE_URL set to a PostgreSQL database of its own, created for it
# and dropped after (PGSERVER, default postgres://postgres@127.0.0.1:5432; PGPARAMS, e.g.
# "?sslmode=disable", appended to the URL; PGCREATE, options of CREATE DATABASE, e.g.
# "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'" for a database that orders text
# as most production ones do, not by code point). For benchmarks on PostgreSQL that must not
# share a database: two builds a migration apart cannot.
#   benches/fresh-pg.sh benches/ab.sh patch /tmp/before/scimd target/release/scimd
#   for build in /tmp/before/scimd target/release/scimd; do
#       ROUNDS=1 benches/fresh-pg.sh benches/ab.sh entra-sync "$build"; done
set -euo pipefail
server=${PGSERVER:-postgres://postgres@127.0.0.1:5432}
database=bench_$$_$RANDOM
psql -q "$server/postgres" -c "CREATE DATABASE $database ${PGCREATE:-}"
trap 'psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)"' EXIT
DATABASE_URL="$server/$database${PGPARAMS:-}" "$@"
