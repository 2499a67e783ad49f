"""Runs the SkyPilot pipeline workflow on a Temporal server.

    python run_pipeline.py worker                 # a worker for the task queue
    python run_pipeline.py start [--cluster NAME] # starts a run and prints its result

Both take ``--temporal HOST:PORT`` (default ``localhost:7233``, a
``temporal server start-dev``) and ``--task-queue`` (default ``skypilot``).
The worker reaches the API server through the client's endpoint resolution
(``SKYPILOT_API_SERVER_ENDPOINT`` ...) unless ``start --endpoint URL`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from sky_activities import ALL_ACTIVITIES
from sky_workflow import PipelineInput, SkyPipelineWorkflow

LAUNCH_TASK = """\
name: prepare
resources: {cpus: 0.5}
setup: echo 'setting up the cluster'
run: |
  echo "preparing data on $(hostname)"
"""

TRAIN_TASK = """\
name: train
resources: {cpus: 0.5}
run: |
  for epoch in 1 2 3; do echo "epoch $epoch/3"; sleep 1; done
"""

EVALUATE_TASK = """\
name: evaluate
resources: {cpus: 0.5}
run: echo 'evaluating'
"""


async def run_worker(client: Client, task_queue: str) -> None:
    worker = Worker(client, task_queue=task_queue, workflows=[SkyPipelineWorkflow], activities=ALL_ACTIVITIES)
    logging.info("worker polling task queue %r", task_queue)
    await worker.run()


async def start(client: Client, task_queue: str, cluster: str, endpoint: str | None) -> None:
    result = await client.execute_workflow(
        SkyPipelineWorkflow.run,
        PipelineInput(
            cluster_name=cluster,
            launch_task=LAUNCH_TASK,
            exec_tasks=[TRAIN_TASK, EVALUATE_TASK],
            endpoint=endpoint,
        ),
        id=f"sky-pipeline-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    for job in result.jobs:
        print(f"job {job.job_id} on {job.cluster_name}: {job.status}")
    print(f"cluster torn down by {result.down_operation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["worker", "start"])
    parser.add_argument("--temporal", default="localhost:7233", help="Temporal frontend HOST:PORT")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", default="skypilot")
    parser.add_argument("--cluster", default="temporal-pipeline", help="cluster name (start)")
    parser.add_argument("--endpoint", default=None, help="API server endpoint for the activities (start)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        client = await Client.connect(args.temporal, namespace=args.namespace)
        if args.command == "worker":
            await run_worker(client, args.task_queue)
        else:
            await start(client, args.task_queue, args.cluster, args.endpoint)

    asyncio.run(run())


if __name__ == "__main__":
    main()
