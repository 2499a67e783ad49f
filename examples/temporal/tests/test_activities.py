"""The activities in temporalio's ActivityEnvironment (no Temporal server)
against a real API server."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from skypilot_client import v1
from skypilot_client.testing import LocalServer

from conftest import Gate, job_status, request_state
from sky_activities import (
    DownInput,
    ExecInput,
    LaunchInput,
    ManagedJobInput,
    ManagedJobWaitInput,
    Progress,
    down,
    exec_task,
    idempotency_key,
    jobs_launch,
    jobs_wait,
    launch,
)

TASK = """\
resources: {cpus: 0.5}
run: |
  for i in 1 2 3 4 5; do echo "line $i"; sleep 0.4; done
"""


def environment(run_id: str = "", activity_id: str = "1", details: list[Any] | None = None, attempt: int = 1):
    """An activity environment that records heartbeats in ``env.beats``."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_run_id=run_id or str(uuid.uuid4()),
        activity_id=activity_id,
        heartbeat_details=list(details or []),
        heartbeat_timeout=timedelta(seconds=3),
        attempt=attempt,
    )
    env.beats = []
    env.on_heartbeat = lambda *details: env.beats.append(Progress.from_details(details))
    return env


def job_lines(caplog, cluster: str, job_id: int) -> list[str]:
    """The job's lines the activity logged (``"[%s/%s] %s"``, cluster, job, line)."""
    return [
        r.args[2]
        for r in caplog.records
        if r.name == "temporalio.activity" and isinstance(r.args, tuple) and r.args[:2] == (cluster, job_id)
    ]


async def wait_for_beat(env, predicate, timeout: float = 30.0) -> Progress:
    async def poll() -> Progress:
        while True:
            for beat in env.beats:
                if predicate(beat):
                    return beat
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), timeout)


def test_idempotency_key() -> None:
    info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_run_id="run-1", activity_id="7")
    assert idempotency_key(info) == "temporal:run-1/7"
    assert idempotency_key(dataclasses.replace(info, attempt=3)) == "temporal:run-1/7"
    assert len(idempotency_key(dataclasses.replace(info, activity_id="a" * 300))) <= 256


def test_progress_from_details() -> None:
    assert Progress.from_details([]) == Progress()
    details = {"operation": "operations/x", "cluster_name": "c", "job_id": 2, "offset": 10, "unknown": 1}
    assert Progress.from_details([details]) == Progress("operations/x", "c", 2, 10)


async def test_launch_heartbeats_offsets_and_resumes(
    sky_server: LocalServer, cluster_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run_id = str(uuid.uuid4())
    env = environment(run_id, activity_id="launch")
    params = LaunchInput(task=TASK, cluster_name=cluster_name, endpoint=sky_server.endpoint)
    result = await env.run(launch, params)

    assert result.status == "SUCCEEDED" and result.cluster_name == cluster_name
    assert result.log_start == 0 and result.log_end == len(b"".join(f"line {i}\n".encode() for i in range(1, 6)))
    assert job_lines(caplog, cluster_name, result.job_id) == [f"line {i}" for i in range(1, 6)]

    # Heartbeats name the request and the job, with offsets that only grow.
    assert all(beat.operation == result.operation for beat in env.beats)
    offsets = [beat.offset for beat in env.beats if beat.job_id]
    assert offsets == sorted(offsets)
    reached = sorted({offset for offset in offsets if offset > 0})
    assert len(reached) >= 2 and reached[-1] == result.log_end, reached  # several chunks

    # A retry that gets a heartbeat from the middle of the log resumes there:
    # same request, same job, only the rest of the log.
    middle = next(beat for beat in env.beats if 0 < beat.offset < result.log_end)
    caplog.clear()
    retry = environment(run_id, activity_id="launch", details=[middle.details()], attempt=2)
    resumed = await retry.run(launch, params)
    assert (resumed.operation, resumed.job_id, resumed.status) == (result.operation, result.job_id, "SUCCEEDED")
    assert resumed.log_start == middle.offset and resumed.log_end == result.log_end
    assert min(beat.offset for beat in retry.beats) >= middle.offset
    rest = job_lines(caplog, cluster_name, result.job_id)
    assert rest and rest[-1] == "line 5" and "line 1" not in rest

    # A retry without heartbeat details: the idempotency key finds the request.
    again = await environment(run_id, activity_id="launch", attempt=3).run(launch, params)
    assert (again.operation, again.job_id, again.log_start) == (result.operation, result.job_id, 0)
    with sky_server.client() as client:
        assert [job.job_id for job in client.queue(cluster_name)] == [result.job_id]


async def test_exec_and_down(sky_server: LocalServer, cluster_name: str) -> None:
    run_id = str(uuid.uuid4())
    launched = await environment(run_id, "launch").run(
        launch, LaunchInput(task="echo up", cluster_name=cluster_name, endpoint=sky_server.endpoint)
    )
    executed = await environment(run_id, "exec").run(
        exec_task, ExecInput(cluster_name=cluster_name, task="echo again", endpoint=sky_server.endpoint)
    )
    assert executed.job_id == launched.job_id + 1 and executed.status == "SUCCEEDED"

    with pytest.raises(ApplicationError) as failed:
        await environment(run_id, "exec-fail").run(
            exec_task, ExecInput(cluster_name=cluster_name, task="exit 4", endpoint=sky_server.endpoint)
        )
    assert failed.value.type == "SkyJobFailed" and failed.value.non_retryable
    assert failed.value.details[0]["exit_code"] == 4

    torn = await environment(run_id, "down").run(
        down, DownInput(cluster_name=cluster_name, endpoint=sky_server.endpoint)
    )
    assert torn.operation.startswith("operations/")
    with sky_server.client() as client:
        assert client.status([cluster_name]) == []
    # Already gone: nothing to do.
    again = await environment(run_id, "down-again").run(
        down, DownInput(cluster_name=cluster_name, endpoint=sky_server.endpoint)
    )
    assert again.operation == ""


async def test_retryable_failure_submits_anew_on_retry(sky_server: LocalServer, cluster_name: str) -> None:
    """A request that failed in a way that may pass later (no room for the
    cluster now) is submitted again by the next attempt, under a key of its
    own: the activity's key would only return the failed request."""
    run_id = str(uuid.uuid4())
    params = LaunchInput(
        task="resources: {cpus: 1000}\nrun: echo never\n", cluster_name=cluster_name, endpoint=sky_server.endpoint
    )
    first = environment(run_id, "launch")
    with pytest.raises(ApplicationError) as failed:
        await first.run(launch, params)
    assert not failed.value.non_retryable, failed.value
    second = environment(run_id, "launch", details=[first.beats[-1].details()], attempt=2)
    with pytest.raises(ApplicationError):
        await second.run(launch, params)
    assert second.beats[-1].operation != first.beats[-1].operation


async def test_cancel_reaches_the_running_job(sky_server: LocalServer, cluster_name: str) -> None:
    env = environment(activity_id="launch")
    params = LaunchInput(
        task="resources: {cpus: 0.5}\nrun: echo started; sleep 120\n",
        cluster_name=cluster_name,
        endpoint=sky_server.endpoint,
    )
    running = asyncio.ensure_future(env.run(launch, params))
    beat = await wait_for_beat(env, lambda b: b.offset > 0)  # "started" was streamed
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 60)
    with sky_server.client() as client:
        assert job_status(client, cluster_name, beat.job_id) == "CANCELLED"
        assert request_state(client, beat.operation) == "SUCCEEDED"  # the launch itself was done


async def test_cancel_reaches_the_pending_request(sky_server: LocalServer, gate: Gate) -> None:
    env = environment(activity_id="exec")
    params = ExecInput(cluster_name=gate.cluster, task="echo never", endpoint=sky_server.endpoint)
    running = asyncio.ensure_future(env.run(exec_task, params))
    beat = await wait_for_beat(env, lambda b: bool(b.operation))
    with sky_server.client() as client:
        assert request_state(client, beat.operation) == "PENDING"  # queued behind the gate
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 60)
    with sky_server.client() as client:
        assert request_state(client, beat.operation) == "CANCELLED"


async def test_worker_shutdown_leaves_the_job_to_the_next_attempt(
    sky_server: LocalServer, cluster_name: str, tmp_path: Path
) -> None:
    """An attempt interrupted by its worker's shutdown cancels nothing; the
    next attempt resumes the same job from the heartbeat's offset."""
    run_id = str(uuid.uuid4())
    env = environment(run_id, activity_id="launch")
    # The job runs until the test creates this file (or gives up after 5 minutes).
    release = tmp_path / "release"
    params = LaunchInput(
        task=(
            "resources: {cpus: 0.5}\nrun: |\n  echo started\n"
            f"  for i in $(seq 3000); do [ -e {release} ] && break; sleep 0.1; done\n"
            f"  [ -e {release} ] && echo finished\n"
        ),
        cluster_name=cluster_name,
        endpoint=sky_server.endpoint,
    )
    running = asyncio.ensure_future(env.run(launch, params))
    beat = await wait_for_beat(env, lambda b: b.offset > 0)
    env.worker_shutdown()
    env.cancel(ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 60)
    with sky_server.client() as client:
        assert job_status(client, cluster_name, beat.job_id) == "RUNNING"

    release.touch()
    retry = environment(run_id, activity_id="launch", details=[env.beats[-1].details()], attempt=2)
    result = await retry.run(launch, params)
    assert (result.job_id, result.status) == (beat.job_id, "SUCCEEDED")
    assert result.log_start == len(b"started\n") and result.log_end == len(b"started\nfinished\n")


# --------------------------------------------------------------------------- #
# Managed jobs
# --------------------------------------------------------------------------- #


def managed_lines(caplog, job_id: int) -> list[str]:
    """The managed job's lines the activity logged (``"[managed job %s] %s"``), without attempt headers."""
    return [
        r.args[1]
        for r in caplog.records
        if r.name == "temporalio.activity"
        and isinstance(r.args, tuple)
        and r.msg.startswith("[managed job")
        and r.args[0] == job_id
        and not r.args[1].startswith("=== ")
    ]


def job_clusters(client, job_name: str) -> list[str]:
    """The clusters of the managed jobs named ``job_name`` (``<name>-<id>-<4 chars>``)."""
    return [c.name for c in client.status(all_users=True) if c.name.startswith(f"{job_name}-")]


async def test_managed_job_submitted_once_and_waited_for(
    sky_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run_id, name = str(uuid.uuid4()), f"tmp-{uuid.uuid4().hex[:8]}"
    params = ManagedJobInput(task=TASK, name=name, endpoint=sky_server.endpoint)
    submit = environment(run_id, activity_id="submit")
    submitted = await submit.run(jobs_launch, params)
    assert submitted.name == name and submitted.job_id >= 1 and submitted.operation.startswith("operations/")
    assert submit.beats[-1].job_id == submitted.job_id
    # A retried submission (same workflow run and activity) gets the same job.
    again = await environment(run_id, activity_id="submit", attempt=2).run(jobs_launch, params)
    assert again == submitted

    wait = environment(run_id, activity_id="wait")
    result = await wait.run(jobs_wait, ManagedJobWaitInput(job_id=submitted.job_id, endpoint=sky_server.endpoint))
    assert (result.job_id, result.name, result.status, result.recovery_count) == (
        submitted.job_id,
        name,
        "SUCCEEDED",
        0,
    )
    assert managed_lines(caplog, submitted.job_id) == [f"line {i}" for i in range(1, 6)]
    offsets = [beat.offset for beat in wait.beats]
    assert offsets == sorted(offsets) and offsets[-1] == result.log_end > 0
    with sky_server.client() as client:
        assert job_clusters(client, name) == []  # torn down with the job

    # A retry given a heartbeat from the middle of the output streams only the
    # rest. (The output's lines come a chunk each, after the attempt's header.)
    middle = max((beat for beat in wait.beats if 0 < beat.offset < result.log_end), key=lambda beat: beat.offset)
    caplog.clear()
    retry = environment(run_id, activity_id="wait", details=[middle.details()], attempt=2)
    resumed = await retry.run(jobs_wait, ManagedJobWaitInput(job_id=submitted.job_id, endpoint=sky_server.endpoint))
    assert (resumed.status, resumed.log_start, resumed.log_end) == ("SUCCEEDED", middle.offset, result.log_end)
    rest = managed_lines(caplog, submitted.job_id)
    assert rest and rest[-1] == "line 5" and "line 1" not in rest


async def test_managed_job_failure_and_unknown_job(sky_server: LocalServer) -> None:
    task = "resources:\n  cpus: 0.5\n  job_recovery: {max_restarts_on_errors: 1}\nrun: echo trying; exit 6\n"
    run_id = str(uuid.uuid4())
    submitted = await environment(run_id, "submit").run(
        jobs_launch, ManagedJobInput(task=task, endpoint=sky_server.endpoint)
    )
    with pytest.raises(ApplicationError) as failed:
        await environment(run_id, "wait").run(
            jobs_wait, ManagedJobWaitInput(job_id=submitted.job_id, endpoint=sky_server.endpoint)
        )
    assert failed.value.type == "SkyManagedJobFailed" and failed.value.non_retryable
    details = failed.value.details[0]
    assert (details["status"], details["recovery_count"]) == ("FAILED", 1), details
    # Without failing on it: the result says how the job ended.
    result = await environment(run_id, "wait-again").run(
        jobs_wait,
        ManagedJobWaitInput(job_id=submitted.job_id, endpoint=sky_server.endpoint, fail_on_job_failure=False),
    )
    assert (result.status, result.recovery_count) == ("FAILED", 1)

    with pytest.raises(ApplicationError) as unknown:
        await environment(run_id, "wait-unknown").run(
            jobs_wait, ManagedJobWaitInput(job_id=10**9, endpoint=sky_server.endpoint)
        )
    assert unknown.value.type == "SkyError:NOT_FOUND" and unknown.value.non_retryable


async def test_cancel_reaches_the_managed_job(sky_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run_id, name = str(uuid.uuid4()), f"tmp-{uuid.uuid4().hex[:8]}"
    task = "resources: {cpus: 0.5}\nrun: echo started; sleep 120\n"
    submitted = await environment(run_id, "submit").run(
        jobs_launch, ManagedJobInput(task=task, name=name, endpoint=sky_server.endpoint)
    )
    env = environment(run_id, "wait")
    running = asyncio.ensure_future(
        env.run(jobs_wait, ManagedJobWaitInput(job_id=submitted.job_id, endpoint=sky_server.endpoint))
    )

    async def started() -> None:  # the job printed: it runs
        while "started" not in managed_lines(caplog, submitted.job_id):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(started(), 60)
    with sky_server.client() as client:
        assert len(job_clusters(client, name)) == 1
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 90)
    with sky_server.client() as client:
        (job,) = client.jobs_queue(job_ids=[submitted.job_id])
        assert job.status == v1.ManagedJobStatus.MANAGED_JOB_STATUS_CANCELLED
        assert job_clusters(client, name) == []
