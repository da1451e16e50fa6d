"""Pages through a connection's users by cursor and by startIndex (count=100) against a
running scimd and prints the mean latency of the first and last ten pages of each.

Usage: TOKEN=<bearer token> python3 benches/paging.py [PORT]   (127.0.0.1 only)
"""

import http.client
import json
import os
import sys
import time

port = int(sys.argv[1]) if len(sys.argv) > 1 else 18181
token = os.environ["TOKEN"]
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def get(path):
    start = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    body = json.loads(connection.getresponse().read())
    return (time.perf_counter() - start) * 1000, body


def mean(values):
    return sum(values) / len(values)


cursor, by_cursor = "", []
while True:
    ms, body = get(f"/scim/v2/Users?count=100&attributes=id&cursor={cursor}")
    by_cursor.append(ms)
    cursor = body.get("nextCursor")
    if not cursor:
        break
total = body["totalResults"]
starts = list(range(1, 1001, 100)) + list(range(max(1, total - 1000), total, 100))
by_index = [get(f"/scim/v2/Users?count=100&attributes=id&startIndex={start}")[0] for start in starts]
print(f"users {total}: cursor first10 {mean(by_cursor[:10]):.2f} ms, last10 {mean(by_cursor[-10:]):.2f} ms; "
      f"startIndex first10 {mean(by_index[:10]):.2f} ms, last10 {mean(by_index[-10:]):.2f} ms")
