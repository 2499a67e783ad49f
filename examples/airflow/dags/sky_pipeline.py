"""A SkyPilot pipeline: launch a cluster, run two jobs on it, tear it down.

    launch  >>  train  >>  evaluate  >>  down (trigger rule all_done)
    [every task]  >>  watcher (trigger rule one_failed)

``launch`` creates the cluster and runs its first task; ``train`` and
``evaluate`` run one after the other on it with ``sky exec``; ``down`` tears
the cluster down whatever happened before, so a failed job leaves no cluster
behind. Airflow judges a run by its last tasks, and ``down`` succeeds after a
failed job too: ``watcher`` runs only when some task failed, and fails, so
that the run is marked failed (and is skipped otherwise).

Run parameters (``--conf`` / ``run_conf``):

* ``cluster_name``: the cluster (default ``airflow-pipeline``);
* ``evaluate_exit_code``: exit code of the evaluate job (default 0), to see
  the failure path.

The API server comes from the Airflow connection named by the environment
variable ``SKYPILOT_AIRFLOW_CONN_ID`` (read when the DAG file is parsed);
without it, from the client's own endpoint resolution
(``SKYPILOT_API_SERVER_ENDPOINT``, ``~/.sky/skyconfig.yaml``, the local
default).
"""

from __future__ import annotations

import os

import pendulum
from airflow import DAG
from airflow.decorators import task
from airflow.exceptions import AirflowException
from airflow.models.param import Param

from sky_airflow import SkyDownOperator, SkyExecOperator, SkyLaunchOperator

SKY_CONN_ID = os.environ.get("SKYPILOT_AIRFLOW_CONN_ID") or None
CLUSTER = "{{ params.cluster_name }}"

with DAG(
    dag_id="sky_pipeline",
    description="Launch a SkyPilot cluster, run two jobs on it, tear it down",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["skypilot"],
    params={
        "cluster_name": Param("airflow-pipeline", type="string", pattern=r"^[a-zA-Z][-a-zA-Z0-9_.]*$"),
        "evaluate_exit_code": Param(0, type="integer", minimum=0, maximum=255),
    },
    default_args={"sky_conn_id": SKY_CONN_ID, "poll_interval": 2.0},
) as dag:
    launch = SkyLaunchOperator(
        task_id="launch",
        cluster_name=CLUSTER,
        task={
            "name": "prepare",
            "resources": {"cpus": "0.5"},
            "setup": "echo 'setting up the cluster'",
            "run": "echo \"preparing data on $(hostname)\"\necho 'data ready'",
        },
    )

    train = SkyExecOperator(
        task_id="train",
        cluster_name=CLUSTER,
        task={
            "name": "train",
            "resources": {"cpus": "0.5"},
            "envs": {"EPOCHS": "3"},
            "run": 'for epoch in $(seq 1 "$EPOCHS"); do echo "epoch $epoch/$EPOCHS"; done\necho "training done"',
        },
    )

    evaluate = SkyExecOperator(
        task_id="evaluate",
        cluster_name=CLUSTER,
        task={
            "name": "evaluate",
            "resources": {"cpus": "0.5"},
            "run": "echo 'evaluating'\nexit {{ params.evaluate_exit_code }}",
        },
    )

    down = SkyDownOperator(task_id="down", cluster_name=CLUSTER, trigger_rule="all_done")

    @task(trigger_rule="one_failed", retries=0)
    def watcher() -> None:
        raise AirflowException("a task of the pipeline failed (the cluster was torn down all the same)")

    launch >> train >> evaluate >> down
    [launch, train, evaluate, down] >> watcher()
