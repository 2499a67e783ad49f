#!/usr/bin/env bash
# Tests one orchestrator example (examples/<name>, e.g. airflow or temporal)
# against real API servers:
#   scripts/test-example.sh NAME [pytest arguments]
#
# Creates (or reuses) the venv target/venvs/NAME with the pinned
# examples/NAME/requirements-test.txt (reinstalled when that file changes),
# installs the Python client from ./clients/python into it, and runs pytest in
# examples/NAME. Environment: SKY_BIN (the `sky` binary, default
# target/debug/sky), PYTHON (interpreter for the venv, default python3; the pins
# are for 3.11).
set -euo pipefail

NAME="${1:?usage: scripts/test-example.sh NAME [pytest arguments]}"
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLE="$ROOT/examples/$NAME"
REQS="$EXAMPLE/requirements-test.txt"
VENV="$ROOT/target/venvs/$NAME"
if [ ! -f "$REQS" ]; then
    echo "test-example.sh: no example with test requirements at $EXAMPLE" >&2
    exit 1
fi

SKY_BIN="${SKY_BIN:-$ROOT/target/debug/sky}"
if [ ! -x "$SKY_BIN" ]; then
    echo "test-example.sh: no sky binary at $SKY_BIN: run 'cargo build --bin sky' or set SKY_BIN" >&2
    exit 1
fi
SKY_BIN="$(cd "$(dirname "$SKY_BIN")" && pwd)/$(basename "$SKY_BIN")"
export SKY_BIN

source "$ROOT/scripts/pinned-venv.sh"
pinned_venv "$VENV" "$REQS"
# The client of this checkout (its dependencies are pinned above).
if ! out="$("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$ROOT/clients/python" 2>&1)"; then
    echo "$out" >&2
    exit 1
fi
"$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null

cd "$EXAMPLE"
exec "$VENV/bin/python" -m pytest "$@"
