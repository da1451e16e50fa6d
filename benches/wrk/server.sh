# Sourced by the benchmark scripts: starts a release scimd on 127.0.0.1:$port with a fresh
# organization and SCIM connection, exports TOKEN, and stops the server and removes its
# files on exit (the database and connection come from ../seeded.sh). Sets: here, root,
# work, scimd, connection, server, base ("http://127.0.0.1:$port").
here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "${BASH_SOURCE[0]}")/../seeded.sh" bench
RUST_LOG=warn "$scimd" serve --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
base="http://127.0.0.1:$port"

# Creates users for about $2 seconds (userNames <$1>-…@bench.test).
seed_users() {
    PREFIX=$1 wrk -t1 -c8 -d"$2s" -s "$root/benches/wrk/create_users.lua" "$base" >/dev/null 2>&1 || true
}

# Writes the ids of every user of the connection to $1, one a line, paging by cursor.
list_user_ids() {
    local cursor="" page
    : >"$1"
    while :; do
        page=$(curl -s "$base/scim/v2/Users?count=1000&attributes=id&cursor=$cursor" -H "Authorization: Bearer $TOKEN")
        echo "$page" | grep -o '"id":"member-[^"]*"' | cut -d'"' -f4 >>"$1"
        cursor=$(echo "$page" | sed -n 's/.*"nextCursor":"\([^"]*\)".*/\1/p')
        [ -n "$cursor" ] || break
    done
}
