#!/usr/bin/env bash
# Installs Pyventus from the Python package index into a virtual environment
# next to this script, then times it (see bench.py). Arguments go to bench.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check "pyventus==0.8.0"
exec "$here/.venv/bin/python" "$here/bench.py" "$@"
