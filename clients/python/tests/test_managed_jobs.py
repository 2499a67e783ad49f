"""Managed jobs (`sky jobs`) through the sync and asyncio clients against a
real local API server: each job runs on a cluster of its own, which is gone
once the job is over."""

from __future__ import annotations

import pathlib
import threading
import uuid
from typing import Dict, List

import grpc
import pytest

from skypilot_client import (
    FINAL_MANAGED_JOB_STATUSES,
    Client,
    ErrorReason,
    LogStream,
    Pipeline,
    SkyError,
    Task,
    v1,
)
from skypilot_client import _common
from skypilot_client.testing import LocalServer

from _helpers import lines

SUCCEEDED = v1.ManagedJobStatus.MANAGED_JOB_STATUS_SUCCEEDED
FAILED = v1.ManagedJobStatus.MANAGED_JOB_STATUS_FAILED
CANCELLED = v1.ManagedJobStatus.MANAGED_JOB_STATUS_CANCELLED
RUNNING = v1.ManagedJobStatus.MANAGED_JOB_STATUS_RUNNING


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def job_clusters(client: Client, job_name: str) -> List[str]:
    """The clusters of the jobs named ``job_name`` (``<name>-<id>-<4 chars>``)."""
    return [cluster.name for cluster in client.status(all_users=True) if cluster.name.startswith(f"{job_name}-")]


def output_lines(stream: LogStream) -> List[str]:
    """The job's own lines: the stream without the header naming each attempt."""
    return [line for line in lines(data for _, data in stream) if not line.startswith("=== ")]


def read_until(stream: LogStream, marker: bytes) -> bytes:
    """Reads a followed log until ``marker`` appears (the job printed it: it runs)."""
    seen = b""
    for _, data in stream:
        seen += data
        if marker in seen:
            return seen
    raise AssertionError(f"the log ended without {marker!r}: {seen!r}")


def test_a_managed_job_succeeds_on_a_cluster_that_is_gone_afterwards(sky_client: Client) -> None:
    name = unique("mj")
    op = sky_client.jobs_launch(Task(run="echo hello from a managed job", cpus=0.5), name=name)
    assert op.metadata is not None and op.metadata.request_name == "sky.jobs.launch"
    launched = op.result(timeout=60)
    assert isinstance(launched, v1.LaunchManagedJobResponse)
    assert launched.job_id >= 1 and launched.name == name

    job = sky_client.jobs_wait(launched.job_id, timeout=120)
    assert isinstance(job, v1.ManagedJob)
    assert (job.job_id, job.name, job.status) == (launched.job_id, name, SUCCEEDED)
    assert job.status in FINAL_MANAGED_JOB_STATUSES
    assert (job.recovery_count, job.num_tasks, job.resources) == (0, 1, "1x[CPU:0.5]")
    assert job.HasField("ended_at") and not job.failure_reason
    assert job_clusters(sky_client, name) == []  # torn down with the job

    stream = sky_client.jobs_logs(launched.job_id)
    assert output_lines(stream) == ["hello from a managed job"]
    assert stream.job is not None and stream.job.status == SUCCEEDED
    controller = sky_client.jobs_logs(launched.job_id, controller=True, follow=False).text()
    assert "The job succeeded." in controller and "torn down" in controller

    (listed,) = sky_client.jobs_queue(job_ids=[launched.job_id])
    assert (listed.job_id, listed.status) == (launched.job_id, SUCCEEDED)
    assert launched.job_id in [queued.job_id for queued in sky_client.jobs_queue()]
    assert launched.job_id not in [queued.job_id for queued in sky_client.jobs_queue(skip_finished=True)]


def test_a_pipeline_runs_its_tasks_in_order_under_its_name(sky_client: Client, tmp_path: pathlib.Path) -> None:
    name = unique("pipe")
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"name: {name}\n---\nname: prepare\nrun: echo step one\n---\nname: train\nresources: {{cpus: 0.5}}\n"
        "run: echo step two\n"
    )
    launched = sky_client.jobs_launch(str(path)).result(timeout=60)
    assert launched.name == name
    job = sky_client.jobs_wait(launched.job_id, timeout=120)
    assert (job.status, job.num_tasks, job.current_task, job.task_name) == (SUCCEEDED, 2, 1, "train")
    output = sky_client.jobs_logs(0, name=name).text()
    assert output.index("step one") < output.index("step two"), output
    assert "Task 1/2 'prepare'" in output and "Task 2/2 'train'" in output
    assert job_clusters(sky_client, name) == []

    # The same as a list of tasks built in code.
    in_code = Pipeline([Task(run="echo a", name="a"), Task(run="echo b", name="b")], name=unique("code"))
    again = sky_client.jobs_launch(in_code).result(timeout=60)
    assert again.name == in_code.name
    assert sky_client.jobs_wait(again.job_id, timeout=120).num_tasks == 2


def test_restarts_on_errors_then_failed(sky_client: Client) -> None:
    name = unique("flaky")
    task = f"""
name: {name}
resources:
  cpus: 0.5
  job_recovery:
    max_restarts_on_errors: 1
run: echo attempt on $(hostname); exit 3
"""
    launched = sky_client.jobs_launch(task).result(timeout=60)
    job = sky_client.jobs_wait(launched.job_id, timeout=180)
    assert (job.status, job.recovery_count) == (FAILED, 1), job
    assert "the task failed" in job.failure_reason
    output = sky_client.jobs_logs(launched.job_id).text()
    assert "attempt 1 (recoveries so far: 0)" in output and "attempt 2 (recoveries so far: 1)" in output
    assert output.count("attempt on ") == 2, output
    assert job_clusters(sky_client, name) == []


def test_cancel_a_running_job(sky_client: Client) -> None:
    name = unique("long")
    launched = sky_client.jobs_launch(Task(run="echo started; sleep 120", cpus=0.5), name=name).result(timeout=60)
    with sky_client.jobs_logs(launched.job_id) as stream:
        read_until(stream, b"started\n")
    # The controller says so once it has recorded the job RUNNING.
    with sky_client.jobs_logs(launched.job_id, controller=True) as stream:
        read_until(stream, b"is running")
    (running,) = sky_client.jobs_queue(job_ids=[launched.job_id])
    assert running.status == RUNNING and running.cluster_name
    assert job_clusters(sky_client, name) == [running.cluster_name]  # a cluster of its own
    with pytest.raises(TimeoutError, match=f"managed job {launched.job_id} is not over"):
        sky_client.jobs_wait(launched.job_id, timeout=0.5)

    cancelled = sky_client.jobs_cancel([launched.job_id]).result(timeout=120)
    assert isinstance(cancelled, v1.CancelManagedJobsResponse)
    assert list(cancelled.cancelled_job_ids) == [launched.job_id]
    job = sky_client.jobs_wait(launched.job_id, timeout=60)
    assert job.status == CANCELLED
    assert job_clusters(sky_client, name) == []

    # Cancelling it again: it is over.
    with pytest.raises(SkyError) as info:
        sky_client.jobs_cancel([launched.job_id])
    assert info.value.error_reason == ErrorReason.ERROR_REASON_ALREADY_DONE
    assert "already finished (CANCELLED)" in info.value.message


def test_cancel_a_finished_job_is_refused(sky_client: Client) -> None:
    launched = sky_client.jobs_launch("echo quick").result(timeout=60)
    assert launched.name == "sky-cmd"
    assert sky_client.jobs_wait(launched.job_id, timeout=120).status == SUCCEEDED
    with pytest.raises(SkyError) as info:
        sky_client.jobs_cancel([launched.job_id])
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_DONE")
    assert info.value.error_reason == ErrorReason.ERROR_REASON_ALREADY_DONE
    assert "already finished (SUCCEEDED)" in info.value.message


def test_unknown_jobs_and_bad_tasks(sky_client: Client) -> None:
    unknown = 10**9
    for call in (
        lambda: sky_client.jobs_wait(unknown, timeout=30),
        lambda: sky_client.jobs_logs(unknown, follow=False).text(),
        lambda: sky_client.jobs_cancel([unknown]),
        lambda: sky_client.jobs_cancel(name=unique("nobody")),
    ):
        with pytest.raises(SkyError) as info:
            call()
        assert (info.value.code, info.value.error_reason) == (
            grpc.StatusCode.NOT_FOUND,
            ErrorReason.ERROR_REASON_NOT_FOUND,
        )
    assert sky_client.jobs_queue(job_ids=[unknown]) == []
    with pytest.raises(ValueError, match="managed job id"):
        sky_client.jobs_wait(0)
    with pytest.raises(SkyError) as info:
        sky_client.jobs_cancel()  # neither ids, a name nor all
    assert info.value.error_reason == ErrorReason.ERROR_REASON_INVALID_ARGUMENT
    with pytest.raises(SkyError) as info:
        sky_client.jobs_launch(Task(run="true", cpus="lots"))
    assert info.value.error_reason == ErrorReason.ERROR_REASON_INVALID_ARGUMENT
    assert "resources.cpus" in info.value.message
    with pytest.raises(ValueError, match="job_recovery.strategy"):
        sky_client.jobs_launch("run: x\nresources:\n  job_recovery: SOMETIMES\n")


def test_queue_pages_newest_first(sky_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [sky_client.jobs_launch(f"echo {i}").result(timeout=60).job_id for i in range(3)]
    for job_id in ids:
        sky_client.jobs_wait(job_id, timeout=120)
    newest_first = sorted(ids, reverse=True)
    assert [job.job_id for job in sky_client.jobs_queue(job_ids=ids)] == newest_first
    assert [job.job_id for job in sky_client.jobs_queue(job_ids=ids, limit=2)] == newest_first[:2]
    # One job a page: the listing follows the pages' tokens.
    monkeypatch.setattr(_common, "MANAGED_JOBS_PAGE_SIZE", 1)
    assert [job.job_id for job in sky_client.jobs_queue(job_ids=ids)] == newest_first
    assert [job.job_id for job in sky_client.jobs_queue(job_ids=ids, limit=2)] == newest_first[:2]


async def test_async_launch_wait_logs_and_cancel(sky_server: LocalServer) -> None:
    async with sky_server.async_client() as client:
        done = await (await client.jobs_launch(Task(run="echo async managed", cpus=0.5))).result(timeout=60)
        job = await client.jobs_wait(done.job_id, timeout=120)
        assert job.status == SUCCEEDED
        stream = client.jobs_logs(done.job_id)
        assert [line for line in lines([data async for _, data in stream]) if not line.startswith("===")] == [
            "async managed"
        ]
        assert stream.job is not None and stream.job.status == SUCCEEDED
        assert [queued.job_id for queued in await client.jobs_queue(job_ids=[done.job_id])] == [done.job_id]

        name = unique("async-long")
        running = await (await client.jobs_launch(Task(run="echo started; sleep 120", cpus=0.5), name=name)).result()
        seen = b""
        async with client.jobs_logs(running.job_id) as follow:
            async for _, data in follow:
                seen += data
                if b"started\n" in seen:
                    break
        with pytest.raises(TimeoutError):
            await client.jobs_wait(running.job_id, timeout=0.5)
        cancelled = await (await client.jobs_cancel(name=name)).result(timeout=120)
        assert list(cancelled.cancelled_job_ids) == [running.job_id]
        assert (await client.jobs_wait(running.job_id, timeout=60)).status == CANCELLED
        with pytest.raises(SkyError) as info:
            await client.jobs_cancel([running.job_id])
        assert info.value.error_reason == ErrorReason.ERROR_REASON_ALREADY_DONE
        with pytest.raises(SkyError) as info:
            await client.jobs_wait(10**9)
        assert info.value.error_reason == ErrorReason.ERROR_REASON_NOT_FOUND


def test_wait_rides_through_a_server_restart(tmp_path: pathlib.Path) -> None:
    """The controller goes on after a restart; a waiting client resumes and
    gets the job's final state."""
    release = tmp_path / "release"
    run = (
        "echo started\n"
        f"for i in $(seq 3000); do [ -e {release} ] && break; sleep 0.1; done\n"
        f"[ -e {release} ] && echo finished\n"
    )
    with LocalServer() as server, server.client() as client:
        launched = client.jobs_launch(Task(run=run, cpus=0.5)).result(timeout=60)
        with client.jobs_logs(launched.job_id) as stream:
            read_until(stream, b"started\n")
        outcome: Dict[str, object] = {}

        def wait() -> None:
            try:
                outcome["job"] = client.jobs_wait(launched.job_id, timeout=120)
            except BaseException as err:  # noqa: BLE001 - reported by the test thread
                outcome["error"] = err

        waiter = threading.Thread(target=wait)
        waiter.start()
        try:
            server.restart()
        finally:
            release.touch()
            waiter.join(150)
        assert not waiter.is_alive() and "error" not in outcome, outcome
        job = outcome["job"]
        assert isinstance(job, v1.ManagedJob) and job.status == SUCCEEDED, job
        assert "finished" in client.jobs_logs(launched.job_id).text()
