# Sourced by the benchmark scripts that seed with `scimd connection import-users`: a fresh
# database (DATABASE_URL, default SQLite in a temporary directory), a release scimd (SCIMD to
# run another build), and an organization with one SCIM connection named after $1. Sets:
# root, work, scimd, connection; exports DATABASE_URL, SCIMD_JWT_SECRET and TOKEN.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
export DATABASE_URL=${DATABASE_URL:-$work/scimd.db}
export SCIMD_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
scimd=${SCIMD:-$root/target/release/scimd}
[ -x "$scimd" ] || (cd "$root" && cargo build --release)
"$scimd" org create --name Bench --slug "$1-$$" >/dev/null
created=$("$scimd" connection create --org "$1-$$" --idp microsoft-entra)
export TOKEN=$(echo "$created" | sed -n 's/.*"bearer_token": "\(.*\)".*/\1/p')
connection=$(echo "$created" | sed -n 's/.*"connection_id": "\([^"]*\)".*/\1/p')

# Starts `scimd serve` on 127.0.0.1:$1 (log in $work/serve.log) and waits until it answers
# /readyz (up to $2 seconds, default 60). Sets: server (its pid).
start_server() {
    # A server left over from another run would answer instead, and be measured.
    if curl -s -o /dev/null "http://127.0.0.1:$1/readyz"; then
        echo "port $1 is taken: stop what listens there, or pass another PORT" >&2
        exit 1
    fi
    RUST_LOG=warn "$scimd" serve --bind "127.0.0.1:$1" >"$work/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 1 $((${2:-60} * 5))); do
        curl -s -o /dev/null "http://127.0.0.1:$1/readyz" && return 0
        sleep 0.2
    done
}
