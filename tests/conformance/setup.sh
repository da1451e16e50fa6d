#!/usr/bin/env bash
# Installs the conformance suite into a virtualenv under target/ (once; again when the
# requirements change). Used by .ci/run and, on a fresh checkout, by tests/conformance.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$here/../../target/conformance-venv}
stamp="$venv/.requirements"
# Both database cases of tests/conformance.rs may call this at once: one installs, the
# other waits for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$stamp"; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
