#!/usr/bin/env bash
# Lookup latency against the number of users (BENCHMARKS.md, issue 9): one database grows
# through SIZES (default "1000 10000 100000 1000000") by `scimd connection import-users
# --generate`; at each size a release scimd serves it and benches/user_growth.py times
# REQUESTS lookups (filter userName eq and GET by id, one at a time), then draws
# benchmarks/user-growth.svg. DATABASE_URL chooses the database (default: SQLite in a
# temporary directory); SCIMD=<binary> runs another build. 127.0.0.1 only.
set -euo pipefail
sizes=${SIZES:-1000 10000 100000 1000000}
port=${PORT:-18186}
. "$(dirname "$0")/seeded.sh" growth
export OUT=${OUT:-$work/results.jsonl}
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
have=0 prefixes=""
for size in $sizes; do
    step=$((size - have))
    "$scimd" connection import-users --connection "$connection" --generate "$step" \
        --prefix "g$size" ${BATCH:+--batch "$BATCH"} >/dev/null
    prefixes="${prefixes:+$prefixes,}g$size:$step"
    have=$size
    start_server "$port" 120
    python3 "$root/benches/user_growth.py" "$port" "$size" "$prefixes"
    kill $server; wait $server 2>/dev/null || true; server=""
done
SVG=${SVG:-$root/benchmarks/user-growth.svg} python3 "$root/benches/user_growth.py"
echo "results: $OUT"
