"""Test set-up: a throw-away AIRFLOW_HOME (sqlite) and real API servers.

Airflow reads its configuration when first imported, so the environment is
set here, before any test module imports it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1]
DAGS = EXAMPLE / "dags"
PLUGINS = EXAMPLE / "plugins"

_HOME = tempfile.mkdtemp(prefix="sky-airflow-test-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update(
    {
        # Nothing may touch the real ~/.sky or ~/airflow.
        "HOME": os.path.join(_HOME, "home"),
        "AIRFLOW_HOME": os.path.join(_HOME, "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
os.makedirs(os.environ["HOME"], exist_ok=True)
os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
for name in ("SKYPILOT_API_SERVER_ENDPOINT", "SKYPILOT_SERVICE_ACCOUNT_TOKEN", "SKYPILOT_AIRFLOW_CONN_ID"):
    os.environ.pop(name, None)
sys.path.insert(0, str(PLUGINS))

# Its `sky_deploy_server` runs with `--local-infra shared-server-identity` (a real
# deployment's is off): the tests launch jobs on it to test credentials, not isolation.
pytest_plugins = ["skypilot_client.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database, created as a deployment does (`airflow db migrate`)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr

# Helpers and the `gate` fixture shared with the other example suite.
sys.path.insert(0, str(EXAMPLE.parent))
from sky_test_support import Gate, gate, job_status, request_state, wait_until  # noqa: E402, F401
