"""A Temporal workflow over the SkyPilot activities: launch a cluster, run
two jobs on it one after the other, and tear it down in a ``finally`` (also
when a job failed or the workflow was cancelled)."""

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
        down,
        exec_task,
        launch,
    )

__all__ = ["PipelineInput", "PipelineResult", "SkyPipelineWorkflow"]


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
