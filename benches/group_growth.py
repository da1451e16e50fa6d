"""One group grows from empty to every user in IDS, one PATCH `add` a time (Entra's shape),
against a running scimd; prints latency per tenth of the growth and the ratio of the last
tenth to the first (issue 9's target: within 1.5x).

Usage: TOKEN=… GROUP=… IDS=<file of user ids> python3 benches/group_growth.py [PORT]
Run by benches/wrk/group_growth_full.sh. 127.0.0.1 only; one request at a time.
"""

import http.client
import json
import os
import sys
import time

port = int(sys.argv[1]) if len(sys.argv) > 1 else 18183
token, group = os.environ["TOKEN"], os.environ["GROUP"]
ids = [line.strip() for line in open(os.environ["IDS"]) if line.strip()]
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

latencies = []
for member_id in ids:
    body = json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "Add", "path": "members", "value": [{"value": member_id}]}]})
    start = time.perf_counter()
    connection.request("PATCH", f"/scim/v2/Groups/{group}", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    latencies.append((time.perf_counter() - start) * 1000)
    if response.status != 204:
        sys.exit(f"PATCH answered {response.status}")


def summary(values):
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1],
            "mean": sum(values) / len(values)}


tenth = len(latencies) // 10
tenths = [summary(latencies[i * tenth:(i + 1) * tenth]) for i in range(10)]
for i, s in enumerate(tenths):
    print(f"members {i * tenth:>7}-{(i + 1) * tenth:<7} p50 {s['p50']:.2f} ms  p90 {s['p90']:.2f}  "
          f"p99 {s['p99']:.2f}  max {s['max']:.1f}  mean {s['mean']:.2f}")
first, last = tenths[0], tenths[-1]
print(f"last tenth / first tenth: p50 {last['p50'] / first['p50']:.2f}x, p90 {last['p90'] / first['p90']:.2f}x, "
      f"p99 {last['p99'] / first['p99']:.2f}x, mean {last['mean'] / first['mean']:.2f}x")
