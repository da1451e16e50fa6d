#!/usr/bin/env bash
# Side by side (BENCHMARKS.md, issue 9): the same scimd-bench scenarios against the Python
# reference server scim2-server (PyPI, in-memory) and against scimd (release, SQLite unless
# DATABASE_URL says otherwise), one after the other, then the ratios. 127.0.0.1 only.
set -euo pipefail
users=${USERS:-5000}
duration=${DURATION:-10}
connections=${CONNECTIONS:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/peer-venv
[ -x "$venv/bin/scim2-server" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check scim2-server==0.8.3
}
(cd "$root" && cargo build --release --bins)
bench=$root/target/release/scimd-bench
out=$(mktemp -d)
run_all() { # name url token
    for scenario in entra-sync lookup patch; do
        SCIMD_BENCH_TOKEN=$3 "$bench" --url "$2" --scenario $scenario --users "$users" \
            --connections "$connections" --duration-s "$duration" --json-out "$out/$1-$scenario.json" |
            grep -E "^summary" || true
    done
}
echo "== scim2-server $("$venv/bin/pip" show scim2-server | sed -n 's/^Version: //p')"
"$venv/bin/scim2-server" --port 18196 --bearer-token peer-token >"$out/peer.log" 2>&1 &
peer=$!
sleep 2
run_all peer http://127.0.0.1:18196/v2 peer-token
kill $peer 2>/dev/null || true; wait $peer 2>/dev/null || true; pkill -f "scim2-server --port 18196" || true
echo "== scimd"
port=18197
. "$root/benches/wrk/server.sh"
run_all scimd "$base/scim/v2" "$TOKEN"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print(f"{'scenario':<12} {'scim2-server':>14} {'scimd':>10} {'ratio':>7}  p99 (ms) peer / scimd")
for scenario in ["entra-sync", "lookup", "patch"]:
    peer, ours = (json.load(open(f"{out}/{name}-{scenario}.json")) for name in ("peer", "scimd"))
    p99 = lambda doc: max(k["p99_ms"] for name, k in doc["kinds"].items() if not name.startswith("seed"))
    print(f"{scenario:<12} {peer['throughput']:>12.0f}/s {ours['throughput']:>8.0f}/s {ours['throughput'] / peer['throughput']:>6.1f}x  "
          f"{p99(peer):.1f} / {p99(ours):.1f}")
PY
