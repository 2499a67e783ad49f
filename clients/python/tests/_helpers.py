"""Small helpers shared by the tests."""

from __future__ import annotations

import socket
import time
from typing import Callable, Iterable, TypeVar

from skypilot_client import Client, v1

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


def free_port() -> int:
    """A loopback port nothing listens on (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
