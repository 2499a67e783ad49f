#!/usr/bin/env bash
# Tests of the Airflow example (examples/airflow): the operators, the trigger
# and the example DAG (run with dag.test()) against real API servers.
#
#   scripts/test-airflow.sh [pytest arguments]
#
# Creates (or reuses) the venv target/venvs/airflow with the pinned
# examples/airflow/requirements-test.txt (reinstalled when that file changes),
# installs the Python client from ./clients/python into it, and runs pytest.
# Environment: SKY_BIN (the `sky` binary, default target/debug/sky), PYTHON
# (interpreter for the venv, default python3; the pins are for 3.11),
# SKY_AIRFLOW_VENV (another venv folder).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLE="$ROOT/examples/airflow"
REQS="$EXAMPLE/requirements-test.txt"
VENV="${SKY_AIRFLOW_VENV:-$ROOT/target/venvs/airflow}"

SKY_BIN="${SKY_BIN:-$ROOT/target/debug/sky}"
if [ ! -x "$SKY_BIN" ]; then
    echo "test-airflow.sh: no sky binary at $SKY_BIN: run 'cargo build --bin sky' or set SKY_BIN" >&2
    exit 1
fi
SKY_BIN="$(cd "$(dirname "$SKY_BIN")" && pwd)/$(basename "$SKY_BIN")"
export SKY_BIN

want="$(sha256sum "$REQS" | cut -d' ' -f1)"
stamp="$VENV/.requirements-test.sha256"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "test-airflow.sh: installing the pinned test environment into $VENV (a few minutes)" >&2
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
    echo "$want" >"$stamp"
fi
# The client of this checkout (its dependencies are pinned above).
if ! out="$("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$ROOT/clients/python" 2>&1)"; then
    echo "$out" >&2
    exit 1
fi
"$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null

cd "$EXAMPLE"
exec "$VENV/bin/python" -m pytest "$@"
