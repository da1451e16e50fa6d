#!/usr/bin/env bash
# Interim benchmark (BENCHMARKS.md): creates, lookups and Entra-style PATCHes with wrk against
# a release scimd on 127.0.0.1, on the database DATABASE_URL names (default: a fresh SQLite
# file). Bounded: each phase runs DURATION seconds. Needs wrk (apt-get install wrk).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
duration=${DURATION:-10}
connections=${CONNECTIONS:-8}
port=${PORT:-18181}
work=$(mktemp -d)
export DATABASE_URL=${DATABASE_URL:-$work/scimd.db}
export SCIMD_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
scimd="$root/target/release/scimd"
[ -x "$scimd" ] || (cd "$root" && cargo build --release)

"$scimd" org create --name Bench --slug "bench-$$" >/dev/null 2>&1
export TOKEN=$("$scimd" connection create --org "bench-$$" --idp microsoft-entra 2>/dev/null | sed -n 's/.*"bearer_token": "\(.*\)".*/\1/p')
RUST_LOG=warn "$scimd" serve --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
url="http://127.0.0.1:$port"
backend=$(curl -s "$url/readyz" | sed -n 's/.*"database":"\([a-z]*\)".*/\1/p')

phase() { # name script
    echo "== $1 ($backend, $connections connections, ${duration}s)"
    wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$here/$2" "$url" 2>&1 |
        grep -E "Requests/sec|Latency  |50%|90%|99%|requests in|Non-2xx|unexpected|missed" | sort -u | head -12
}

export PREFIX=seed
phase "create (POST /Users)" create_users.lua
total=$(curl -s "$url/scim/v2/Users?count=0" -H "Authorization: Bearer $TOKEN" | sed -n 's/.*"totalResults":\([0-9]*\).*/\1/p')
echo "users: $total"
export COUNT=$total
phase "lookup (filter=userName eq, random)" lookup_users.lua
curl -s "$url/scim/v2/Users?count=1000&attributes=id" -H "Authorization: Bearer $TOKEN" |
    grep -o '"id":"member-[^"]*"' | cut -d'"' -f4 >"$work/ids"
export IDS=$work/ids
phase "patch (Entra-style, 3 operations)" patch_users.lua
echo "server RSS: $(ps -o rss= -p $server) KiB"
