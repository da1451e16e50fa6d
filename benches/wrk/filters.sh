#!/usr/bin/env bash
# Filters that no index answers, at USERS users (default 100,000): the time of one list
# request for each (median of 11), on the database DATABASE_URL names (default SQLite).
# SCIMD=<binary> compares another build. 127.0.0.1 only.
set -euo pipefail
users=${USERS:-100000}
port=${PORT:-18184}
. "$(dirname "$0")/server.sh"
echo "seeding about $users users"
seed_users filters "$((users / 1700 + 2))"
total=$(curl -s "$base/scim/v2/Users?count=0" -H "Authorization: Bearer $TOKEN" | sed -n 's/.*"totalResults":\([0-9]*\).*/\1/p')
echo "users: $total"
probe=$(curl -s "$base/scim/v2/Users?count=1&startIndex=$((total / 2))&attributes=userName" -H "Authorization: Bearer $TOKEN" |
    sed -n 's/.*"userName":"\([^"]*\)".*/\1/p')
time_filter() { # label, url-encoded filter
    local times=()
    for _ in $(seq 11); do
        times+=("$(curl -s -o /dev/null -w '%{time_total}' "$base/scim/v2/Users?count=100&filter=$2" -H "Authorization: Bearer $TOKEN")")
    done
    printf '%-55s %8.1f ms\n' "$1" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 6p | awk '{print $1 * 1000}')"
}
time_filter "emails.value eq (one user)" "emails.value%20eq%20%22$probe%22"
time_filter "emails[type eq work and value eq] (one user)" "emails%5Btype%20eq%20%22work%22%20and%20value%20eq%20%22$probe%22%5D"
time_filter "name.familyName eq \"nobody\" (no user)" "name.familyName%20eq%20%22nobody%22"
time_filter "active eq false (no user)" "active%20eq%20false"
time_filter "title pr (no user; not narrowed)" "title%20pr"
