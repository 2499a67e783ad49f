"""Test support shared by the example suites (airflow/, temporal/): polling
helpers, request and job states by name, and a gate that holds a cluster busy.
Each suite's conftest.py imports it from here."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from skypilot_client import Client, SkyError, Task, v1
from skypilot_client.testing import LocalServer


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def request_state(client: Client, name: str) -> str:
    operation = client.operation(name)
    operation.refresh()
    return v1.RequestState.Name(operation.metadata.state).removeprefix("REQUEST_STATE_")


def job_status(client: Client, cluster: str, job_id: int) -> str:
    job = next(job for job in client.queue(cluster) if job.job_id == job_id)
    return v1.JobStatus.Name(job.status).removeprefix("JOB_STATUS_")


class Gate:
    """Holds a cluster busy: a launch whose file mount is a FIFO waits in the
    server (at most a few minutes, or until cancelled) until a writer opens and
    closes the FIFO, so that every request queued behind it on the same
    cluster stays PENDING (not done) meanwhile."""

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
        """Lets the waiting launch go on: it copies what was written (nothing)."""
        with self.server.client() as client:
            launch = client.operation(self.operation)

            def opened() -> bool:
                try:
                    os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader (yet, or any more)
                    return launch.done()
                return True

            wait_until(opened, what=f"the gate's launch {self.operation} to read its FIFO or end")
            launch.wait(timeout=30)


@pytest.fixture
def gate(sky_server: LocalServer, tmp_path: Path) -> Iterator[Gate]:
    gate = Gate(sky_server, tmp_path)
    try:
        gate.close_when_ready()
        yield gate
    finally:
        try:
            if gate.operation:
                gate.open()
        finally:
            with sky_server.client() as client:
                try:
                    client.down(gate.cluster).result(timeout=60)
                except SkyError as err:
                    # Only a gate whose launch never made the cluster has none to tear down.
                    if err.code != grpc.StatusCode.NOT_FOUND:
                        raise AssertionError(f"the gate's cluster {gate.cluster} was not torn down: {err}") from err
