#!/usr/bin/env bash
# Filters at USERS users (default 1,000,000; BENCHMARKS.md, issue 5): seeds a fresh database
# with `scimd connection import-users --generate`, deactivates and renames DEACTIVATE users
# (default 1,000) through SCIM so that `active eq false` and `meta.lastModified gt` find
# something, then times every filter of benches/filters.py. DATABASE_URL chooses the database
# (default: SQLite in a temporary directory); SCIMD=<binary> runs another build.
# 127.0.0.1 only.
set -euo pipefail
users=${USERS:-1000000}
deactivate=${DEACTIVATE:-1000}
port=${PORT:-18185}
. "$(dirname "$0")/seeded.sh" filters
echo "seeding $users users"
"$scimd" connection import-users --connection "$connection" --generate "$users" --prefix user ${BATCH:+--batch "$BATCH"}
RUST_LOG=warn "$scimd" serve --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
python3 - "$port" "$deactivate" "$users" <<'PY'
import http.client, json, os, sys
port, count, users = (int(a) for a in sys.argv[1:])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
headers = {"Authorization": f"Bearer {os.environ['TOKEN']}", "Content-Type": "application/scim+json"}
step = max(1, users // max(1, count))
for n in range(0, step * count, step):
    connection.request("GET", f"/scim/v2/Users?attributes=id&filter=userName%20eq%20%22user-{n}@bench.test%22", headers=headers)
    found = json.loads(connection.getresponse().read())["Resources"]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": "title", "value": "Ex-employee"}]}
    connection.request("PATCH", f"/scim/v2/Users/{found[0]['id']}", body=json.dumps(body), headers=headers)
    response = connection.getresponse(); response.read()
    assert response.status == 200, response.status
print(f"deactivated {count} users")
PY
SCIMD_PID=$server PREFIX=user python3 "$root/benches/filters.py" "$port" "$((users * 7 / 9))"
