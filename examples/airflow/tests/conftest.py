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
import time
import uuid
from collections.abc import Iterator
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

pytest_plugins = ["skypilot_client.pytest_plugin"]

from skypilot_client import Client, SkyError, Task  # noqa: E402
from skypilot_client.testing import LocalServer  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database, created as a deployment does (`airflow db migrate`)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def request_state(client: Client, name: str) -> str:
    """RequestMetadata.state of an operation, e.g. RUNNING or CANCELLED."""
    operation = client.operation(name)
    operation.refresh()
    from skypilot_client import v1

    return v1.RequestState.Name(operation.metadata.state).removeprefix("REQUEST_STATE_")


def job_status(client: Client, cluster: str, job_id: int) -> str:
    from skypilot_client import v1

    job = next(job for job in client.queue(cluster) if job.job_id == job_id)
    return v1.JobStatus.Name(job.status).removeprefix("JOB_STATUS_")


class Gate:
    """Holds a cluster busy: a launch whose file mount is a FIFO blocks in the
    server until the FIFO is opened for writing, so that every request queued
    behind it on the same cluster stays PENDING (not done) meanwhile."""

    def __init__(self, server: LocalServer, folder: Path) -> None:
        self.server = server
        self.cluster = f"gate-{uuid.uuid4().hex[:8]}"
        self.fifo = folder / "gate.fifo"
        os.mkfifo(self.fifo)
        self.operation = ""

    def close_when_ready(self) -> None:
        with self.server.client() as client:
            task = Task(run="true", cpus=0.5, file_mounts={"~/gate": str(self.fifo)})
            self.operation = client.launch(task, self.cluster).name
            wait_until(lambda: request_state(client, self.operation) == "RUNNING", what="the gate launch to run")

    def open(self) -> None:
        """Lets the blocked launch go on (it then fails: a FIFO is no file)."""
        with self.server.client() as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # no reader (yet, or any more)
                    if client.operation(self.operation).done():
                        return
                    time.sleep(0.05)
                    continue
                os.close(fd)
                client.operation(self.operation).wait(timeout=30)
                return


@pytest.fixture
def gate(sky_server: LocalServer, tmp_path: Path) -> Iterator[Gate]:
    gate = Gate(sky_server, tmp_path)
    try:
        gate.close_when_ready()
        yield gate
    finally:
        if gate.operation:
            gate.open()
        with sky_server.client() as client:
            try:
                client.down(gate.cluster).result(timeout=60)
            except SkyError:
                pass
