#!/usr/bin/env bash
# Tests the Python client (clients/python) on a machine that has Python 3.9+
# with pip and the `sky` binary:
#   1. creates or reuses the venv target/venvs/python-client and installs the
#      pinned test requirements (clients/python/requirements-test.txt) and the package;
#   2. checks that the committed generated modules match proto/
#      (clients/python/scripts/generate.sh --check, with its own pinned venv);
#   3. runs pytest on clients/python/tests against real API servers.
#
# Environment: SKY_BIN (default target/debug/sky), PYTHON (default python3).
# Extra arguments go to pytest, e.g. `scripts/test-python-client.sh -k async`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PKG="$ROOT/clients/python"
VENV="$ROOT/target/venvs/python-client"
PYTHON="${PYTHON:-python3}"

export SKY_BIN="${SKY_BIN:-$ROOT/target/debug/sky}"
if [ ! -x "$SKY_BIN" ]; then
    echo "test-python-client.sh: $SKY_BIN is missing: run \`cargo build --bin sky\` or set SKY_BIN" >&2
    exit 1
fi

pip_install() {
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

source "$ROOT/scripts/pinned-venv.sh"
PYTHON="$PYTHON" pinned_venv "$VENV" "$PKG/requirements-test.txt"
# The package itself, always rebuilt from the working tree; its declared
# dependencies must be met by the pinned requirements.
pip_install --force-reinstall --no-deps "$PKG"
"$VENV/bin/python" -m pip check --disable-pip-version-check >/dev/null

bash "$PKG/scripts/generate.sh" --check

cd "$PKG"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
