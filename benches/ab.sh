#!/usr/bin/env bash
# Same-run A/B of scimd builds (BENCHMARKS.md): for ROUNDS rounds, each build in turn gets a
# fresh database (SQLite unless DATABASE_URL says otherwise), USERS imported users (none for
# entra-sync, which creates them), a `serve` on 127.0.0.1, and one `scimd-bench` run of
# SCENARIO; then its summary line and the server's CPU per request, from /proc, and on
# PostgreSQL the CPU per request of every PostgreSQL process of the machine (backends,
# WAL writer, checkpointer: run nothing else against it meanwhile); with DETAIL=1 the
# latencies of each kind of request too.
#   benches/ab.sh patch /tmp/before/scimd target/release/scimd
set -euo pipefail
scenario=$1; shift
rounds=${ROUNDS:-2} users=${USERS:-5000} connections=${CONNECTIONS:-8} duration=${DURATION:-10}
port=${PORT:-18190}
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/target/release/scimd-bench
[ -x "$bench" ] || (cd "$root" && cargo build --release --bins)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Every PostgreSQL process's CPU ticks so far (0 without PostgreSQL); a process that ends
# meanwhile takes its ticks with it, which the backends of this run do not: they outlive it.
database_ticks() {
    local total=0 pid
    for pid in $(pgrep -x postgres); do
        total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
for round in $(seq 1 "$rounds"); do
    for build in "$@"; do
        (
            export SCIMD=$build
            . "$root/benches/seeded.sh" "ab$round$RANDOM"
            server=""
            trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
            [ "$scenario" = entra-sync ] || "$scimd" connection import-users \
                --connection "$connection" --generate "$users" --prefix bench >/dev/null
            start_server "$port" 20
            before=$(cpu_ticks $server) database_before=$(database_ticks)
            output=$("$bench" --url "http://127.0.0.1:$port/scim/v2" --token "$TOKEN" \
                --scenario "$scenario" --users "$users" --connections "$connections" \
                --duration-s "$duration" --prefix bench --json-out "$work/run.json")
            summary=$(grep '^summary' <<<"$output")
            ticks=$(($(cpu_ticks $server) - before))
            database=$(($(database_ticks) - database_before))
            requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$work/run.json")
            database_cpu=""
            [[ "$DATABASE_URL" != postgres* ]] ||
                database_cpu=", PostgreSQL CPU $((database * 10000 / requests)) µs/request"
            echo "round $round $build: $summary; server CPU $((ticks * 10000 / requests)) µs/request$database_cpu"
            # DETAIL=1: each kind of request's line too (its latencies).
            [ -z "${DETAIL:-}" ] || grep '^  ' <<<"$output"
        )
    done
done
