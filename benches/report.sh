#!/usr/bin/env bash
# The headline table of BENCHMARKS.md ("Latest figures"): one build, one run, three servers
# one after the other — the peer scim2-server (PyPI, in memory, in a venv under target/),
# scimd on SQLite (a fresh file) and scimd on PostgreSQL (a fresh database on PGSERVER,
# dropped after) — each through the same scimd-bench scenarios: entra-sync (USERS new users),
# then lookup and patch at CONNECTIONS connections and mixed at 64, on USERS users (imported
# by `scimd connection import-users` for scimd, created by entra-sync for the peer). Prints
# the figures as a Markdown table with scimd's ratio to the peer. 127.0.0.1 only.
#   benches/report.sh                  # USERS=5000 DURATION=10 CONNECTIONS=8
set -euo pipefail
users=${USERS:-5000} duration=${DURATION:-10} connections=${CONNECTIONS:-8}
pg_server=${PGSERVER:-postgres://postgres@127.0.0.1:5432}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/peer-venv
[ -x "$venv/bin/scim2-server" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check scim2-server==0.8.3
}
(cd "$root" && cargo build --release --bins --locked)
bench=$root/target/release/scimd-bench
out=$(mktemp -d)
database=report_$$_$RANDOM
peer=""
cleanup() {
    [ -z "$peer" ] || kill "$peer" 2>/dev/null || true
    psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" \
        2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT

# run NAME URL TOKEN PID: every scenario against one server, then its RSS.
run() {
    local scenario conns
    for scenario in entra-sync lookup patch mixed; do
        conns=$connections
        [ "$scenario" != mixed ] || conns=64
        "$bench" --url "$2" --token "$3" --scenario "$scenario" --users "$users" \
            --connections "$conns" --duration-s "$duration" \
            --json-out "$out/$1-$scenario.json" | grep '^summary' | sed "s/^/$1: /" ||
            true # a run with errors says so in the table
    done
    awk '/^VmRSS/ {print $2}' "/proc/$4/status" >"$out/$1-rss"
}

"$venv/bin/scim2-server" --port 18196 --bearer-token peer-token >"$out/peer.log" 2>&1 &
peer=$!
for _ in $(seq 1 50); do
    curl -s -o /dev/null http://127.0.0.1:18196/v2/ServiceProviderConfig && break
    sleep 0.2
done
run peer http://127.0.0.1:18196/v2 peer-token "$peer"
kill "$peer"
wait "$peer" 2>/dev/null || true
peer=""

for backend in sqlite postgres; do
    (
        [ "$backend" = sqlite ] || {
            psql -q "$pg_server/postgres" -c "CREATE DATABASE $database"
            export DATABASE_URL=$pg_server/$database
        }
        . "$root/benches/seeded.sh" "report-$backend"
        server=""
        trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
        "$scimd" connection import-users --connection "$connection" --generate "$users" \
            --prefix bench >/dev/null
        start_server 18197 30
        run "$backend" http://127.0.0.1:18197/scim/v2 "$TOKEN" "$server"
    )
done

postgres_version=$(psql -Atq "$pg_server/postgres" -c "SHOW server_version" | cut -d' ' -f1)
python3 - "$out" "$users" "$duration" "$connections" "$postgres_version" <<'PY'
import json, os, subprocess, sys
out, users, duration, connections, postgres = sys.argv[1:]
def load(name, scenario):
    return json.load(open(f"{out}/{name}-{scenario}.json"))
def kinds(doc):
    return {k: v for k, v in doc["kinds"].items() if not k.startswith("seed")}
def p99(doc):
    return max(v["p99_ms"] for v in kinds(doc).values())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
            if line.startswith("model name")), "?")
print(f"\n{os.popen('date -u +%F').read().strip()}, commit `{commit}`, {os.cpu_count()} cores "
      f"({cpu}), {users} users, {duration} s a scenario, {connections} connections "
      f"(`mixed`: 64); PostgreSQL {postgres}; scim2-server 0.8.3. p99 is the slowest kind of "
      f"request's (`lookup`: by userName or by id; `mixed`: lookup, PATCH or POST).\n")
print("| scenario | scim2-server | scimd, SQLite | ratio | scimd, PostgreSQL | ratio |")
print("|---|---|---|---|---|---|")
labels = {"entra-sync": "`entra-sync` (2 requests a user)", "lookup": "`lookup`", "patch": "`patch`",
          "mixed": "`mixed` (64 connections)"}
for scenario, label in labels.items():
    peer, sqlite, pg = (load(name, scenario) for name in ("peer", "sqlite", "postgres"))
    cell = lambda doc: (f"{doc['throughput']:,.0f} req/s, p99 {p99(doc):.1f} ms"
                        + (f", {doc['errors']} errors" if doc["errors"] else ""))
    ratio = lambda doc: f"{doc['throughput'] / peer['throughput']:.1f}×"
    print(f"| {label} | {cell(peer)} | {cell(sqlite)} | {ratio(sqlite)} | {cell(pg)} | "
          f"{ratio(pg)} |")
rss = {name: int(open(f"{out}/{name}-rss").read() or 0) // 1024
       for name in ("peer", "sqlite", "postgres")}
print(f"| RSS after the run | {rss['peer']} MB | {rss['sqlite']} MB | | "
      f"{rss['postgres']} MB | |")
PY
