"""A SkyPilot managed job: a two-step pipeline submitted with ``sky jobs
launch`` semantics, waited for in the triggerer.

    train (SkyManagedJobOperator)

The API server runs each step on a cluster of its own, one after the other,
relaunches a cluster whose nodes are lost (and, as ``job_recovery`` asks,
restarts a step whose code fails once), and tears the clusters down when the
job ends: the DAG has no cluster to manage. The task fails unless the job ends
SUCCEEDED.

Run parameters (``--conf`` / ``run_conf``): ``job_name`` (default
``airflow-managed``).

The API server comes from the Airflow connection named by the environment
variable ``SKYPILOT_AIRFLOW_CONN_ID`` (read when the DAG file is parsed);
without it, from the client's own endpoint resolution.
"""

from __future__ import annotations

import os

import pendulum
from airflow import DAG
from airflow.models.param import Param

from sky_airflow import SkyManagedJobOperator

SKY_CONN_ID = os.environ.get("SKYPILOT_AIRFLOW_CONN_ID") or None

with DAG(
    dag_id="sky_managed_job",
    description="Run a two-step SkyPilot pipeline as a managed job",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["skypilot"],
    params={"job_name": Param("airflow-managed", type="string", pattern=r"^[a-zA-Z0-9]+([._-][a-zA-Z0-9]+)*$")},
) as dag:
    SkyManagedJobOperator(
        task_id="train",
        job_name="{{ params.job_name }}",
        task=[
            {
                "name": "prepare",
                "resources": {"cpus": "0.5"},
                "run": "echo 'preparing data'\necho 'data ready'",
            },
            {
                "name": "train",
                "resources": {"cpus": "0.5", "job_recovery": {"max_restarts_on_errors": 1}},
                "envs": {"EPOCHS": "2"},
                "run": 'for epoch in $(seq 1 "$EPOCHS"); do echo "epoch $epoch/$EPOCHS"; done',
            },
        ],
        sky_conn_id=SKY_CONN_ID,
        poll_interval=2.0,
    )
