#!/usr/bin/env bash
# Interim benchmark (BENCHMARKS.md): creates, lookups and Entra-style PATCHes with wrk against
# a release scimd on 127.0.0.1, on the database DATABASE_URL names (default: a fresh SQLite
# file). Bounded: each phase runs DURATION seconds. Needs wrk (apt-get install wrk).
set -euo pipefail
duration=${DURATION:-10}
connections=${CONNECTIONS:-8}
port=${PORT:-18181}
. "$(dirname "$0")/server.sh"
url="$base"
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
