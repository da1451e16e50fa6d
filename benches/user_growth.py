"""Lookup latency against the number of users (issue 9's plot): against a running scimd whose
connection holds `users` users named `<prefix>-<n>@bench.test` (see user_growth.sh), sends
REQUESTS (default 2,000) lookups one at a time over one keep-alive connection — half
`filter=userName eq` for a random user, half GET by id of a user found so — and appends a
JSON line {users, kind, p50, p90, p99, max} per kind to OUT.

Usage: TOKEN=… OUT=results.jsonl python3 benches/user_growth.py PORT USERS PREFIXES
       (PREFIXES: comma-separated prefix:count pairs, as imported; 127.0.0.1 only)
With SVG=out.svg and only OUT given (no PORT), draws p50 and p99 against the user count from OUT.
"""

import http.client
import json
import math
import os
import random
import sys
import time
import urllib.parse


def summary(values):
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def measure(port, users, prefixes):
    token = os.environ["TOKEN"]
    requests = int(os.environ.get("REQUESTS", "2000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    pool = [(prefix, int(count)) for prefix, count in (pair.split(":") for pair in prefixes.split(","))]
    rng = random.Random(users)
    times = {"filter userName eq": [], "GET by id": []}
    ids = []
    for n in range(requests):
        if n % 2 == 0 or not ids:
            prefix, count = rng.choice(pool)
            name = f"{prefix}-{rng.randrange(count)}@bench.test"
            path = "/scim/v2/Users?filter=" + urllib.parse.quote(f'userName eq "{name}"')
            kind = "filter userName eq"
        else:
            path = f"/scim/v2/Users/{rng.choice(ids)}"
            kind = "GET by id"
        start = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
        times[kind].append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            sys.exit(f"{path}: {response.status} {body}")
        if kind == "filter userName eq":
            if body["totalResults"] != 1:
                sys.exit(f"{name}: {body['totalResults']} users")
            ids.append(body["Resources"][0]["id"])
            ids = ids[-1000:]
    with open(os.environ["OUT"], "a") as out:
        for kind, values in times.items():
            line = {"users": users, "kind": kind, **summary(values)}
            out.write(json.dumps(line) + "\n")
            print(f"{users:>9} users  {kind:<20} p50 {line['p50']:.2f} ms  p90 {line['p90']:.2f}  "
                  f"p99 {line['p99']:.2f}  max {line['max']:.1f}")


def svg(results, path):
    """p50 and p99 of each kind against the user count, on a logarithmic axis."""
    rows = [json.loads(line) for line in open(results) if line.strip()]
    counts = sorted({row["users"] for row in rows})
    width, height, left, bottom = 720, 360, 60, 40
    top = max(row["p99"] for row in rows) * 1.15
    low, high = math.log10(counts[0]), math.log10(counts[-1])
    x = lambda users: left + (width - left - 30) * (math.log10(users) - low) / max(1e-9, high - low)
    y = lambda ms: height - bottom - (height - bottom - 20) * ms / top
    colours = {("filter userName eq", "p50"): "#1f77b4", ("filter userName eq", "p99"): "#aec7e8",
               ("GET by id", "p50"): "#d62728", ("GET by id", "p99"): "#ff9896"}
    lines, legend = [], []
    for (kind, stat), colour in colours.items():
        points = sorted((row["users"], row[stat]) for row in rows if row["kind"] == kind)
        if not points:
            continue
        drawn = " ".join(f"{x(u):.1f},{y(ms):.1f}" for u, ms in points)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{drawn}"/>')
        lines += [f'<circle cx="{x(u):.1f}" cy="{y(ms):.1f}" r="3" fill="{colour}"/>' for u, ms in points]
        legend.append((f"{kind} {stat}", colour))
    ticks = [f'<text x="{x(u):.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{u:,}</text>'
             for u in counts]
    steps = [top / 4 * i for i in range(5)]
    ticks += [f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" font-size="11" text-anchor="end">{ms:.1f}</text>'
              f'<line x1="{left}" x2="{width - 30}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" stroke="#eee"/>' for ms in steps]
    keys = [f'<rect x="{left + 10 + 170 * i}" y="8" width="12" height="4" fill="{c}"/>'
            f'<text x="{left + 26 + 170 * i}" y="14" font-size="11">{label}</text>' for i, (label, c) in enumerate(legend)]
    document = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{chr(10).join(ticks)}
<line x1="{left}" y1="{height - bottom}" x2="{width - 30}" y2="{height - bottom}" stroke="black"/>
<line x1="{left}" y1="20" x2="{left}" y2="{height - bottom}" stroke="black"/>
{chr(10).join(lines)}
{chr(10).join(keys)}
<text x="{(width + left) / 2}" y="{height - 6}" font-size="12" text-anchor="middle">users in the connection (log scale)</text>
<text x="14" y="{height / 2}" font-size="12" transform="rotate(-90 14 {height / 2})" text-anchor="middle">latency (ms), one request at a time</text>
</svg>
"""
    with open(path, "w") as out:
        out.write(document)


if len(sys.argv) >= 4:
    measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
if os.environ.get("SVG"):
    svg(os.environ["OUT"], os.environ["SVG"])
