"""One group grows from empty to every user in IDS, one PATCH `add` a time (Entra's shape),
against a running scimd; prints latency per tenth of the growth and the ratio of the last
tenth to the first (issue 9's target: within 1.5x).

Usage: TOKEN=… GROUP=… IDS=<file of user ids> [SVG=out.svg] python3 benches/group_growth.py [PORT]
Run by benches/wrk/group_growth_full.sh. 127.0.0.1 only; one request at a time. With SVG set,
also draws p50 and p99 per hundredth of the growth against the group's size.
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


def svg(path, latencies):
    """p50 and p99 of each hundredth of the run against the members the group had."""
    hundredth = max(1, len(latencies) // 100)
    buckets = [sorted(latencies[i:i + hundredth]) for i in range(0, len(latencies), hundredth)]
    points = [(i * hundredth, b[len(b) // 2], b[min(len(b) - 1, int(len(b) * 0.99))]) for i, b in enumerate(buckets)]
    width, height, left, bottom = 720, 360, 60, 40
    top = max(p99 for _, _, p99 in points) * 1.1
    x = lambda members: left + (width - left - 20) * members / max(1, len(latencies))
    y = lambda ms: height - bottom - (height - bottom - 20) * ms / top
    line = lambda index: " ".join(f"{x(p[0]):.1f},{y(p[index]):.1f}" for p in points)
    ticks = "".join(
        f'<text x="{left - 8}" y="{y(top * k / 5):.1f}" text-anchor="end" font-size="11">{top * k / 5:.1f}</text>'
        for k in range(6))
    xticks = "".join(
        f'<text x="{x(len(latencies) * k / 5):.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="11">{int(len(latencies) * k / 5):,}</text>'
        for k in range(6))
    document = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{width / 2}" y="14" text-anchor="middle" font-size="13">PATCH add one member: latency (ms) against group size</text>
<line x1="{left}" y1="{height - bottom}" x2="{width - 20}" y2="{height - bottom}" stroke="black"/>
<line x1="{left}" y1="20" x2="{left}" y2="{height - bottom}" stroke="black"/>
{ticks}{xticks}
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line(1)}"/>
<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{line(2)}"/>
<text x="{width - 140}" y="40" font-size="12" fill="#1f77b4">p50</text>
<text x="{width - 100}" y="40" font-size="12" fill="#d62728">p99</text>
</svg>
"""
    with open(path, "w") as out:
        out.write(document)


if os.environ.get("SVG"):
    svg(os.environ["SVG"], latencies)
    print(f"plot: {os.environ['SVG']}")
