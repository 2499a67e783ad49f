"""The asyncio client against a real local API server: the main flow."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

import grpc
import pytest

from skypilot_client import AsyncClient, AsyncOperation, SkyError, Task, v1
from skypilot_client.testing import LocalServer

from _helpers import closed_port, lines


async def test_async_launch_logs_wait_queue_and_down(sky_server: LocalServer, cluster_name: str) -> None:
    async with sky_server.async_client() as client:
        info = await client.server_info()
        assert info.api_version == 1 and (await client.whoami()).name == info.user.name

        op = await client.launch(Task(run="for i in 1 2 3; do echo async $i; done", cpus=0.5), cluster_name)
        assert isinstance(op, AsyncOperation)
        snapshots = [snapshot async for snapshot in op.watch()]
        assert snapshots[-1].done
        launched = await op.result(timeout=60)
        assert isinstance(launched, v1.LaunchResponse) and launched.cluster_name == cluster_name

        stream = client.job_logs(cluster_name, launched.job_id)
        chunks = [data async for _, data in stream]
        assert lines(chunks) == ["async 1", "async 2", "async 3"]
        assert stream.job is not None and stream.job.status == v1.JobStatus.JOB_STATUS_SUCCEEDED

        log = await op.logs().text()
        assert "Job submitted" in log
        assert await op.logs(follow=False, offset=5).text() == log[5:]
        again = await client.operation(op.id)
        assert again.name == op.name and await again.done()

        (job,) = await client.queue(cluster_name)
        assert job.status == v1.JobStatus.JOB_STATUS_SUCCEEDED
        (cluster,) = await client.status([cluster_name])
        assert cluster.status == v1.ClusterStatus.CLUSTER_STATUS_UP

        executed = await (await client.exec(cluster_name, "echo second")).result(timeout=60)
        assert await client.job_logs(cluster_name, executed.job_id).text() == "second\n"

        await (await client.down(cluster_name)).result(timeout=60)
        assert await client.status([cluster_name]) == []


async def test_async_cancel_a_job_and_errors(sky_server: LocalServer, cluster_name: str) -> None:
    async with sky_server.async_client() as client:
        op = await client.launch(Task(run="echo started; sleep 60", cpus=0.5), cluster_name)
        launched = await op.result(timeout=60)
        stream = client.job_logs(cluster_name, launched.job_id)
        assert await stream.__anext__() == (0, b"started\n")
        cancelled = await (await client.cancel_jobs(cluster_name, all=True)).result(timeout=60)
        assert list(cancelled.cancelled_job_ids) == [launched.job_id]
        assert [chunk async for chunk in stream] == []
        assert stream.job is not None and stream.job.status == v1.JobStatus.JOB_STATUS_CANCELLED

        with pytest.raises(SkyError) as info:
            await client.queue("no-such-cluster")
        assert (info.value.code, info.value.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        failed = await client.launch(Task(run="true", cpus=4096), f"py-{uuid.uuid4().hex[:8]}")
        with pytest.raises(SkyError) as info:
            await failed.result(timeout=60)
        assert info.value.reason == "RESOURCE_EXHAUSTED" and info.value.operation == failed.name
        with pytest.raises(SkyError) as info:
            await failed.cancel()
        assert info.value.reason == "ALREADY_DONE"


async def test_async_calls_run_concurrently(sky_server: LocalServer) -> None:
    async with sky_server.async_client() as client:
        infos = await asyncio.gather(*(client.server_info() for _ in range(20)))
        assert {info.api_version for info in infos} == {1}
        check = await (await client.check()).result(timeout=60)
        assert any(infra.name == "local" for infra in check.infras)


async def test_async_unavailable_is_retried_then_raised() -> None:
    with closed_port() as port:
        async with AsyncClient(f"http://127.0.0.1:{port}", retry_unavailable_for=0.3) as client:
            with pytest.raises(SkyError) as info:
                await client.server_info()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.retryable


def test_one_async_client_across_event_loops(sky_server: LocalServer) -> None:
    client = sky_server.async_client()

    def in_a_new_loop(coroutine: Callable[[], Awaitable[Any]]) -> Any:
        # Each in its own thread, as task runners do (and leaving this thread's loop alone).
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine()).result()

    assert in_a_new_loop(client.server_info).api_version == 1
    assert in_a_new_loop(client.server_info).api_version == 1  # a new loop gets a new channel
    in_a_new_loop(client.close)
