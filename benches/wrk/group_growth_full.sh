#!/usr/bin/env bash
# Group growth all the way (BENCHMARKS.md, issue 9): seeds USERS users (default 200,000), then
# one group gains every one of them one PATCH at a time, and the group is read with
# excludedAttributes=members at full size. 127.0.0.1 only.
set -euo pipefail
users=${USERS:-200000}
port=${PORT:-18183}
. "$(dirname "$0")/server.sh"
url="$base/scim/v2"
auth="Authorization: Bearer $TOKEN"
echo "seeding $users users"
seed_users full "$((users / 1700 + 5))"
list_user_ids "$work/ids"
head -n "$users" "$work/ids" >"$work/ids.used"
echo "users: $(wc -l <"$work/ids.used")"
export GROUP=$(curl -s "$url/Groups" -H "$auth" -H 'Content-Type: application/scim+json' \
    -d '{"displayName":"Everyone"}' | sed -n 's/.*"id":"\(group-[^"]*\)".*/\1/p')
mkdir -p "$root/benchmarks"
IDS="$work/ids.used" SVG="${SVG:-$root/benchmarks/group-growth.svg}" python3 "$root/benches/group_growth.py" "$port"
echo "== GET group with excludedAttributes=members"
wrk -t1 -c1 -d10s --latency -s "$here/get_group.lua" "$base" 2>&1 |
    grep -E "Requests/sec|Latency  |50%|90%|99%|requests in|unexpected" | sort -u | head -8
echo "server RSS: $(ps -o rss= -p $server) KiB"
