"""Discovery latency as the number of organizations grows: creates organizations through the
management API (each claiming its own domain, email JIT RESTRICTED, with one member who
verified an address there) and times POST /v1/discovery for a member of three of them, for a
person eligible by domain, and for a stranger, at each size.

Usage: JWT=<admin JWT> python3 benches/discovery.py [PORT] [SIZES...]   (127.0.0.1 only)
Run by benches/discovery.sh, which starts a release scimd on a fresh database.
"""

import http.client
import json
import os
import sys
import time

port = int(sys.argv[1]) if len(sys.argv) > 1 else 18182
sizes = [int(s) for s in sys.argv[2:]] or [100, 1000, 10000]
jwt = os.environ["JWT"]
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"}


def post(path, body):
    start = time.perf_counter()
    connection.request("POST", path, body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    payload = json.loads(response.read())
    if response.status >= 300:
        sys.exit(f"{path}: {response.status} {payload}")
    return (time.perf_counter() - start) * 1000, payload


def percentiles(values):
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms"


created = 0


def grow(to):
    global created
    while created < to:
        n = created
        _, org = post("/v1/organizations", {
            "organization_name": f"Corp {n}", "organization_slug": f"corp-{n}",
            "email_allowed_domains": [f"corp{n}.test"], "email_jit_provisioning": "RESTRICTED",
        })
        org_id = org["organization"]["organization_id"]
        post(f"/v1/organizations/{org_id}/jit", {
            "email": f"founder@corp{n}.test", "email_verified": True, "method": "email_otp"})
        if n < 3:  # the member of three organizations
            post(f"/v1/organizations/{org_id}/members", {"email_address": "multi@elsewhere.test"})
        created += 1


for size in sizes:
    grow(size)
    eligible = f"newcomer@corp{size // 2}.test"
    for who, email in [("member of 3", "multi@elsewhere.test"), ("eligible by domain", eligible),
                       ("stranger", "nobody@nowhere.test")]:
        timings = [post("/v1/discovery", {"email": email, "email_verified": True})[0] for _ in range(500)]
        found = post("/v1/discovery", {"email": email, "email_verified": True})[1]
        print(f"organizations {size}: {who:<18} -> {len(found['discovered_organizations'])} found, "
              f"{percentiles(timings)}", flush=True)
