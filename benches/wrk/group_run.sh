#!/usr/bin/env bash
# Group growth (BENCHMARKS.md): seeds USERS users, then adds them to one group one PATCH at a
# time — first while the group is small, then after filling it in batches to near USERS —
# and reads the group with excludedAttributes=members at its full size. 127.0.0.1 only;
# every phase is bounded by DURATION seconds.
set -euo pipefail
users=${USERS:-100000}
duration=${DURATION:-10}
port=${PORT:-18182}
. "$(dirname "$0")/server.sh"
url="$base/scim/v2"
auth="Authorization: Bearer $TOKEN"

echo "seeding $users users"
seed_users growth "$((users / 1500 + 1))"
list_user_ids "$work/ids"
total=$(wc -l <"$work/ids")
echo "users: $total"
export GROUP=$(curl -s "$url/Groups" -H "$auth" -H 'Content-Type: application/scim+json' \
    -d '{"displayName":"Everyone"}' | sed -n 's/.*"id":"\(group-[^"]*\)".*/\1/p')
export IDS=$work/ids

phase() { # name script
    echo "== $1"
    wrk -t1 -c1 -d"${duration}s" --latency -s "$here/$2" "$base" 2>&1 |
        grep -E "Requests/sec|Latency  |50%|90%|99%|requests in|unexpected" | sort -u | head -8
}

START=1 phase "add one member at a time, group empty" group_growth.lua
# Fill the group in batches of 1,000 up to the last 20,000 users.
fill_from=20001
fill_to=$((total - 20000))
if [ "$fill_to" -ge "$fill_from" ]; then
    sed -n "${fill_from},${fill_to}p" "$work/ids" | split -l 1000 - "$work/batch-"
    for batch in "$work"/batch-*; do
        values=$(sed 's/.*/{"value":"&"}/' "$batch" | paste -sd, -)
        curl -s -o /dev/null -X PATCH "$url/Groups/$GROUP" -H "$auth" -H 'Content-Type: application/scim+json' \
            -d "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{\"op\":\"add\",\"path\":\"members\",\"value\":[$values]}]}"
    done
fi
size=$(curl -s "$url/Groups/$GROUP?attributes=members" -H "$auth" | grep -o '"value":"member-' | wc -l)
echo "group size before the last phase: $size"
START=$((fill_to + 1)) phase "add one member at a time, group near full" group_growth.lua
phase "GET group with excludedAttributes=members" get_group.lua
echo "server RSS: $(ps -o rss= -p $server) KiB"
