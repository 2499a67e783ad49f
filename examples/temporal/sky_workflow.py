"""Temporal workflows over the SkyPilot activities.

``SkyPipelineWorkflow``: launch a cluster, run two jobs on it one after the
other, and tear it down in a ``finally`` (also when a job failed or the
workflow was cancelled).

``SkyManagedJobWorkflow``: submit a managed job and wait for its final state;
the API server runs it on clusters of its own and tears them down, so there is
nothing to clean up (a cancelled workflow cancels the job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from sky_activities import (
        DownInput,
        ExecInput,
        JobResult,
        LaunchInput,
        ManagedJobInput,
        ManagedJobResult,
        ManagedJobWaitInput,
        down,
        exec_task,
        jobs_launch,
        jobs_wait,
        launch,
    )

__all__ = [
    "ManagedJobWorkflowInput",
    "PipelineInput",
    "PipelineResult",
    "SkyManagedJobWorkflow",
    "SkyPipelineWorkflow",
]


@dataclass
class PipelineInput:
    cluster_name: str
    # Task YAMLs: the launch's task, then the tasks run with exec in order.
    launch_task: str
    exec_tasks: list[str] = field(default_factory=list)
    endpoint: str | None = None
    # Per activity: how long one attempt may take, and how long without a heartbeat.
    activity_timeout_seconds: float = 3600.0
    heartbeat_timeout_seconds: float = 30.0
    maximum_attempts: int = 3


@dataclass
class PipelineResult:
    jobs: list[JobResult]
    down_operation: str


@workflow.defn(name="SkyPipeline")
class SkyPipelineWorkflow:
    @workflow.run
    async def run(self, params: PipelineInput) -> PipelineResult:
        options = {
            "start_to_close_timeout": timedelta(seconds=params.activity_timeout_seconds),
            "heartbeat_timeout": timedelta(seconds=params.heartbeat_timeout_seconds),
            "retry_policy": RetryPolicy(maximum_attempts=params.maximum_attempts),
            # On cancellation, wait until the activity cancelled its request and job.
            "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        }
        jobs: list[JobResult] = []
        try:
            jobs.append(
                await workflow.execute_activity(
                    launch,
                    LaunchInput(task=params.launch_task, cluster_name=params.cluster_name, endpoint=params.endpoint),
                    **options,
                )
            )
            for task in params.exec_tasks:
                jobs.append(
                    await workflow.execute_activity(
                        exec_task,
                        ExecInput(cluster_name=params.cluster_name, task=task, endpoint=params.endpoint),
                        **options,
                    )
                )
        finally:
            # Runs after a failed job and after cancellation of the workflow too.
            torn_down = await workflow.execute_activity(
                down,
                DownInput(cluster_name=params.cluster_name, endpoint=params.endpoint),
                **options,
            )
        return PipelineResult(jobs=jobs, down_operation=torn_down.operation)


@dataclass
class ManagedJobWorkflowInput:
    # A task or pipeline YAML (documents separated by --- run one after another), or a shell command.
    task: str
    name: str = ""
    endpoint: str | None = None
    # How long the job may take (all its attempts), and how long without a heartbeat.
    job_timeout_seconds: float = 24 * 3600.0
    heartbeat_timeout_seconds: float = 30.0
    maximum_attempts: int = 3


@workflow.defn(name="SkyManagedJob")
class SkyManagedJobWorkflow:
    @workflow.run
    async def run(self, params: ManagedJobWorkflowInput) -> ManagedJobResult:
        options = {
            "heartbeat_timeout": timedelta(seconds=params.heartbeat_timeout_seconds),
            "retry_policy": RetryPolicy(maximum_attempts=params.maximum_attempts),
            # On cancellation, wait until the activity cancelled the managed job.
            "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        }
        submitted = await workflow.execute_activity(
            jobs_launch,
            ManagedJobInput(task=params.task, name=params.name, endpoint=params.endpoint),
            start_to_close_timeout=timedelta(minutes=10),
            **options,
        )
        return await workflow.execute_activity(
            jobs_wait,
            ManagedJobWaitInput(job_id=submitted.job_id, endpoint=params.endpoint),
            start_to_close_timeout=timedelta(seconds=params.job_timeout_seconds),
            **options,
        )
