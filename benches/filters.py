"""Times list filters against a running scimd: each filter RUNS times (default 11), one
request at a time over one keep-alive connection, printing totalResults, the median and the
slowest, and the server's RSS before and after when SCIMD_PID is set. The users are those
`scimd connection import-users --generate` makes (userName `<prefix>-<n>@bench.test`,
familyName `User <n>`).

Usage: TOKEN=<bearer token> PREFIX=<prefix> python3 benches/filters.py PORT PROBE
       (PROBE: the n of a user to look for; 127.0.0.1 only)
"""

import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

port, probe = int(sys.argv[1]), int(sys.argv[2])
token, prefix = os.environ["TOKEN"], os.environ.get("PREFIX", "user")
runs = int(os.environ.get("RUNS", "11"))
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
user = f"{prefix}-{probe}@bench.test"
since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - int(os.environ.get("SINCE_S", "120"))))


def rss_mb():
    pid = os.environ.get("SCIMD_PID")
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def get(path):
    start = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        raise SystemExit(f"{path}: {response.status} {body}")
    return (time.perf_counter() - start) * 1000, body


FILTERS = [
    ("userName eq (one user)", f'userName eq "{user}"'),
    ("externalId eq (one user)", f'externalId eq "{user}"'),
    ("emails.value eq (one user)", f'emails.value eq "{user}"'),
    ("emails[type eq work and value eq] (one user)", f'emails[type eq "work" and value eq "{user}"]'),
    ("name.familyName eq (one user)", f'name.familyName eq "User {probe}"'),
    ("displayName eq (no user)", 'displayName eq "nobody"'),
    ("Microsoft: familyName eq and (emails co or co)",
     f'name.familyName eq "User {probe}" and (emails.value co "bench.test" or emails.value co "example.org")'),
    ("id eq or userName eq (two users)",
     f'userName eq "{prefix}-{probe + 1}@bench.test" or userName eq "{user}"'),
    ("active eq false", "active eq false"),
    (f"meta.lastModified gt {since}", f'meta.lastModified gt "{since}"'),
    ("name.familyName sw (a prefix)", f'name.familyName sw "User {probe}"'),
    ("userName sw (a prefix of 111 users)", f'userName sw "{prefix}-{probe // 100}"'),
    ("name.familyName co (SQL alone)", f'name.familyName co "User {probe}"'),
    ("title co (unindexed, evaluated in Rust)", 'title co "x"'),
]

only = os.environ.get("ONLY")
before = rss_mb()
print(f"{'filter':<50} {'total':>8} {'median':>10} {'max':>10}")
for label, text in FILTERS:
    if only and only not in label:
        continue
    path = "/scim/v2/Users?count=100&attributes=id&filter=" + urllib.parse.quote(text)
    times, total = [], None
    for _ in range(runs if "Rust" not in label else max(1, runs // 4)):
        ms, body = get(path)
        times.append(ms)
        total = body["totalResults"]
    print(f"{label:<50} {total:>8} {statistics.median(times):>8.2f}ms {max(times):>8.2f}ms")
after = rss_mb()
if before is not None:
    print(f"server RSS: {before:.0f} MB before, {after:.0f} MB after")
