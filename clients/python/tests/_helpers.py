"""Small helpers shared by the tests."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from skypilot_client import Client, Operation, Task, v1

T = TypeVar("T")


def eventually(probe: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.05) -> T:
    """Polls ``probe`` until it returns something truthy (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def job_status(client: Client, cluster: str, job_id: int) -> str:
    (job,) = [job for job in client.queue(cluster) if job.job_id == job_id]
    return v1.JobStatus.Name(job.status)


def lines(chunks: Iterable[bytes]) -> list:
    return b"".join(chunks).decode().splitlines()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: it stays bound, without listening,
    until the block ends, so connections are refused and no other program can
    take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


class Gate:
    """Holds a cluster busy: a launch whose file mount is a FIFO waits in the
    server until a writer opens and closes the FIFO, so every request queued
    behind it on the same cluster stays PENDING meanwhile."""

    def __init__(self, client: Client, cluster: str, folder: pathlib.Path) -> None:
        self.client = client
        self.cluster = cluster
        self.fifo = folder / "gate.fifo"
        os.mkfifo(self.fifo)
        self.launch: Optional[Operation] = None

    def close(self) -> "Gate":
        """Launches the cluster and returns once its launch is RUNNING (waiting on the FIFO)."""
        task = Task(run="true", cpus=0.5, file_mounts={"~/gate": str(self.fifo)})
        launch = self.launch = self.client.launch(task, self.cluster)

        def running() -> bool:
            launch.refresh()
            return launch.metadata.state == v1.RequestState.REQUEST_STATE_RUNNING

        eventually(running, "the gate's launch to run")
        return self

    def open(self) -> None:
        """Lets the launch go on (it copies what was written: nothing) and waits for it."""
        assert self.launch is not None, "the gate was never closed"
        launch = self.launch

        def opened() -> bool:
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # the server has not opened the FIFO to read yet
                return launch.done()
            return True

        eventually(opened, "the gate's launch to read the FIFO")
        launch.wait(timeout=60)
