"""The example DAG, run with ``dag.test()`` (Airflow runs each task and its
trigger in this process) against real API servers."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from airflow.models import DagBag
from airflow.utils.state import DagRunState, TaskInstanceState

from skypilot_client.testing import LocalServer

pytestmark = pytest.mark.usefixtures("airflow_db")


class TaskLog(logging.Handler):
    """Collects what the tasks write to their log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> TaskLog:
        logging.getLogger("airflow.task").addHandler(self)
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger("airflow.task").removeHandler(self)


def load_dag(dag_id: str = "sky_pipeline"):
    """Parses the DAG files as the scheduler does (they read the connection id
    from the environment when parsed)."""
    from conftest import DAGS

    bag = DagBag(dag_folder=str(DAGS), include_examples=False)
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None
    return dag


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_dag_structure() -> None:
    dag = load_dag()
    assert [t.task_id for t in dag.topological_sort()] == ["launch", "train", "evaluate", "down", "watcher"]
    assert dag.get_task("down").trigger_rule == "all_done"
    assert dag.get_task("watcher").trigger_rule == "one_failed"


def test_pipeline_through_a_connection(sky_deploy_server: LocalServer, monkeypatch) -> None:
    """The whole pipeline on a server that requires credentials, which come
    from an Airflow connection."""
    user, password = sky_deploy_server.credentials
    host, port = sky_deploy_server.address.rsplit(":", 1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SKY_TEST",
        json.dumps({"conn_type": "generic", "host": host, "port": int(port), "login": user, "password": password}),
    )
    monkeypatch.setenv("SKYPILOT_AIRFLOW_CONN_ID", "sky_test")
    cluster = f"af-{uuid.uuid4().hex[:8]}"

    with TaskLog() as log:
        run = load_dag().test(run_conf={"cluster_name": cluster})

    assert states(run) == {
        **{name: TaskInstanceState.SUCCESS for name in ("launch", "train", "evaluate", "down")},
        "watcher": TaskInstanceState.SKIPPED,
    }
    assert run.state == DagRunState.SUCCESS
    for line in ("data ready", "epoch 3/3", "training done", "evaluating"):
        assert line in log.lines, f"{line!r} not in the task logs"
    evaluate = run.get_task_instance("evaluate").xcom_pull(task_ids="evaluate")
    assert evaluate["job_status"] == "SUCCEEDED" and evaluate["cluster_name"] == cluster
    with sky_deploy_server.client() as client:
        assert client.status([cluster]) == []  # torn down
        jobs_run = {op.metadata.request_name for op in client.list_operations() if op.metadata.cluster_name == cluster}
        assert jobs_run == {"sky.launch", "sky.exec", "sky.down"}


def test_failed_job_still_tears_down(sky_server: LocalServer, monkeypatch) -> None:
    """Without a connection the client's own endpoint resolution applies. A
    failing job fails its task and the run; down runs all the same."""
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", sky_server.endpoint)
    monkeypatch.delenv("SKYPILOT_AIRFLOW_CONN_ID", raising=False)
    cluster = f"af-{uuid.uuid4().hex[:8]}"

    with TaskLog() as log:
        run = load_dag().test(run_conf={"cluster_name": cluster, "evaluate_exit_code": 3})

    assert states(run) == {
        "launch": TaskInstanceState.SUCCESS,
        "train": TaskInstanceState.SUCCESS,
        "evaluate": TaskInstanceState.FAILED,
        "down": TaskInstanceState.SUCCESS,
        "watcher": TaskInstanceState.FAILED,
    }
    assert run.state == DagRunState.FAILED
    assert "evaluating" in log.lines
    with sky_server.client() as client:
        assert client.status([cluster]) == []


def test_managed_job_dag(sky_server: LocalServer, monkeypatch) -> None:
    """The managed job DAG: one task that waits for a two-step job, whose
    clusters are gone when it succeeded."""
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", sky_server.endpoint)
    monkeypatch.delenv("SKYPILOT_AIRFLOW_CONN_ID", raising=False)
    name = f"af-managed-{uuid.uuid4().hex[:8]}"

    with TaskLog() as log:
        run = load_dag("sky_managed_job").test(run_conf={"job_name": name})

    assert states(run) == {"train": TaskInstanceState.SUCCESS}
    assert run.state == DagRunState.SUCCESS
    for line in ("data ready", "epoch 2/2"):
        assert line in log.lines, f"{line!r} not in the task log"
    result = run.get_task_instance("train").xcom_pull(task_ids="train")
    assert (result["job_name"], result["job_status"], result["recovery_count"]) == (name, "SUCCEEDED", 0)
    with sky_server.client() as client:
        (job,) = client.jobs_queue(job_ids=[result["job_id"]])
        assert job.num_tasks == 2
        assert [c.name for c in client.status(all_users=True) if c.name.startswith(f"{name}-")] == []
