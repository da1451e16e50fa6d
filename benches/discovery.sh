#!/usr/bin/env bash
# Discovery at 100, 1,000 and 10,000 organizations (BENCHMARKS.md) against a release scimd on
# 127.0.0.1, on the database DATABASE_URL names (default: a fresh SQLite file).
set -euo pipefail
port=${PORT:-18182}
. "$(dirname "$0")/wrk/server.sh"
JWT=$("$scimd" jwt --scope admin | sed -n 's/.*"token": "\(.*\)".*/\1/p') \
    python3 "$here/discovery.py" "$port" "$@"
