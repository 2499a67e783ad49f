"""The operators and the trigger, driven through Airflow's own classes against
a real API server: ``execute`` raises ``TaskDeferred``, the trigger is rebuilt
from what it serialized (as the triggerer does) and run, and its event goes
to ``execute_complete``."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowException, TaskDeferred
from airflow.models.connection import Connection
from airflow.triggers.base import TriggerEvent
from airflow.utils.module_loading import import_string

from skypilot_client import SkyError, v1
from skypilot_client.testing import LocalServer

from conftest import Gate, job_status, request_state, wait_until
from sky_airflow import (
    SkyDownOperator,
    SkyExecOperator,
    SkyLaunchOperator,
    SkyManagedJobOperator,
    SkyManagedJobTrigger,
    SkyOperationTrigger,
    client_settings,
    idempotency_key,
)

pytestmark = pytest.mark.usefixtures("airflow_db")

TASK = {"resources": {"cpus": "0.5"}, "run": "echo first line; echo second line"}


def context(task_id: str, try_number: int = 1, run_id: str = "") -> dict[str, Any]:
    """What the operators read from Airflow's context: the task instance's
    ids (a fresh run id unless given: the server remembers keys)."""
    ti = SimpleNamespace(
        dag_id="test_dag",
        task_id=task_id,
        run_id=run_id or f"manual__{uuid.uuid4().hex}",
        try_number=try_number,
        map_index=-1,
    )
    return {"ti": ti}


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def capture(operator) -> Captured:
    handler = Captured()
    operator.log.addHandler(handler)
    return handler


def rebuilt(trigger):
    """The trigger as the triggerer sees it: from its class path and JSON kwargs."""
    classpath, kwargs = trigger.serialize()
    return import_string(classpath)(**json.loads(json.dumps(kwargs)))


def fire(trigger, timeout: float = 120) -> dict[str, Any]:
    async def first() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout)).payload


def defer(operator, ctx):
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(ctx)
    assert deferred.value.method_name == "execute_complete"
    return deferred.value.trigger


# --------------------------------------------------------------------------- #
# Without a server
# --------------------------------------------------------------------------- #


def test_client_settings_from_connection() -> None:
    plain = Connection(conn_id="a", conn_type="generic", host="sky.internal", port=46580)
    assert client_settings(plain) == {"endpoint": "http://sky.internal:46580"}

    basic = Connection(
        conn_id="b", conn_type="generic", host="sky.example.com", schema="https", login="alice", password="pw"
    )
    assert client_settings(basic) == {"endpoint": "https://sky.example.com", "username": "alice", "password": "pw"}

    token = Connection(
        conn_id="c",
        conn_type="generic",
        host="http://10.0.0.1:46580/",
        password="sky_secret",
        extra=json.dumps({"ca_cert": "/etc/ca.pem"}),
    )
    assert client_settings(token) == {
        "endpoint": "http://10.0.0.1:46580",
        "token": "sky_secret",
        "ca_cert": "/etc/ca.pem",
    }

    override = Connection(
        conn_id="d", conn_type="generic", host="ignored", extra=json.dumps({"endpoint": "http://h:1"})
    )
    assert client_settings(override)["endpoint"] == "http://h:1"

    empty = Connection(conn_id="e", conn_type="generic")
    assert client_settings(empty) == {"endpoint": None}


def test_idempotency_key_is_per_try() -> None:
    key = idempotency_key("dag", "task", "manual__2024", 1)
    assert key == idempotency_key("dag", "task", "manual__2024", 1)
    assert key != idempotency_key("dag", "task", "manual__2024", 2)
    assert key != idempotency_key("dag", "task", "manual__2024", 1, map_index=0)
    long_key = idempotency_key("d" * 250, "t" * 250, "r" * 250, 1)
    assert len(long_key) <= 256 and long_key == idempotency_key("d" * 250, "t" * 250, "r" * 250, 1)


def test_trigger_serializes_no_credentials() -> None:
    trigger = SkyOperationTrigger("operations/abc", sky_conn_id="sky", cluster_name="c", job_id=3)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sky_airflow.SkyOperationTrigger"
    assert kwargs == {
        "operation_name": "operations/abc",
        "endpoint": None,
        "sky_conn_id": "sky",
        "cluster_name": "c",
        "job_id": 3,
        "wait_for_job": True,
        "poll_interval": 5.0,
    }
    assert rebuilt(trigger).serialize() == trigger.serialize()


# --------------------------------------------------------------------------- #
# Against a server
# --------------------------------------------------------------------------- #


def test_launch_exec_down_deferred(sky_server: LocalServer, cluster_name: str) -> None:
    launch = SkyLaunchOperator(task_id="launch", task=TASK, cluster_name=cluster_name, endpoint=sky_server.endpoint)
    ctx = context("launch")
    trigger = defer(launch, ctx)
    again = defer(launch, ctx)  # a retried submission of the same try
    assert again.operation_name == trigger.operation_name

    event = fire(rebuilt(trigger))
    assert event["status"] == "success", event
    assert event["cluster_name"] == cluster_name and event["job_status"] == "SUCCEEDED"
    log = capture(launch)
    result = launch.execute_complete(ctx, event)
    assert result["job_status"] == "SUCCEEDED" and result["job_id"] == event["job_id"]
    assert "first line" in log.lines and "second line" in log.lines

    exec_op = SkyExecOperator(
        task_id="exec", cluster_name=cluster_name, task="echo from exec", endpoint=sky_server.endpoint
    )
    exec_ctx = context("exec")
    event = fire(rebuilt(defer(exec_op, exec_ctx)))
    log = capture(exec_op)
    assert exec_op.execute_complete(exec_ctx, event)["job_id"] == result["job_id"] + 1
    assert "from exec" in log.lines

    # The next try of the task is a new request: a new job.
    retry_ctx = context("exec", try_number=2, run_id=exec_ctx["ti"].run_id)
    retried = fire(rebuilt(defer(exec_op, retry_ctx)))
    assert retried["operation"] != event["operation"] and retried["job_id"] == event["job_id"] + 1

    down = SkyDownOperator(task_id="down", cluster_name=cluster_name, endpoint=sky_server.endpoint)
    down_ctx = context("down")
    event = fire(rebuilt(defer(down, down_ctx)))
    assert event["status"] == "success" and event["job_id"] == 0
    down.execute_complete(down_ctx, event)
    with sky_server.client() as client:
        assert client.status([cluster_name]) == []


def test_failed_job_fails_the_task(sky_server: LocalServer, cluster_name: str) -> None:
    launch = SkyLaunchOperator(
        task_id="launch",
        task={"resources": {"cpus": "0.5"}, "run": "echo about to fail; exit 7"},
        cluster_name=cluster_name,
        endpoint=sky_server.endpoint,
    )
    ctx = context("launch")
    event = fire(rebuilt(defer(launch, ctx)))
    assert event["status"] == "success" and event["job_status"] == "FAILED" and event["exit_code"] == 7
    log = capture(launch)
    with pytest.raises(AirflowException, match=r"ended FAILED \(exit code 7\)"):
        launch.execute_complete(ctx, event)
    assert "about to fail" in log.lines  # the log is written before the task fails


def test_failed_request_fails_the_task(sky_server: LocalServer, cluster_name: str) -> None:
    launch = SkyLaunchOperator(
        task_id="launch",
        task={"resources": {"cpus": "1000"}, "run": "echo never"},
        cluster_name=cluster_name,
        endpoint=sky_server.endpoint,
    )
    ctx = context("launch")
    event = fire(rebuilt(defer(launch, ctx)))
    assert event["status"] == "error" and "1000 CPU" in event["message"], event
    with pytest.raises(AirflowException, match="did not succeed"):
        launch.execute_complete(ctx, event)


def test_refused_request_fails_the_task(sky_server: LocalServer) -> None:
    exec_op = SkyExecOperator(
        task_id="exec", cluster_name="no-such-cluster", task="echo never", endpoint=sky_server.endpoint
    )
    with pytest.raises(AirflowException, match="refused the request: NOT_FOUND"):
        exec_op.execute(context("exec"))


def test_not_deferrable_waits_in_the_worker(sky_server: LocalServer, cluster_name: str) -> None:
    launch = SkyLaunchOperator(
        task_id="launch", task=TASK, cluster_name=cluster_name, endpoint=sky_server.endpoint, deferrable=False
    )
    log = capture(launch)
    result = launch.execute(context("launch"))
    assert result["job_status"] == "SUCCEEDED" and "second line" in log.lines


def test_on_kill_cancels_the_pending_request(sky_server: LocalServer, gate: Gate) -> None:
    exec_op = SkyExecOperator(
        task_id="exec", cluster_name=gate.cluster, task="echo never", endpoint=sky_server.endpoint
    )
    ctx = context("exec")
    trigger = defer(exec_op, ctx)
    with sky_server.client() as client:
        assert request_state(client, trigger.operation_name) == "PENDING"  # queued behind the gate
        exec_op.on_kill()
        assert request_state(client, trigger.operation_name) == "CANCELLED"
    event = fire(rebuilt(trigger))
    assert event["status"] == "error" and event["code"] == "CANCELLED", event
    with pytest.raises(AirflowException, match="CANCELLED"):
        exec_op.execute_complete(ctx, event)


def test_on_kill_cancels_the_running_job(sky_server: LocalServer, cluster_name: str) -> None:
    """Not deferred: the worker waits, and on_kill (called by Airflow when the
    task is killed) cancels the job that is running."""
    launch = SkyLaunchOperator(
        task_id="launch",
        task={"resources": {"cpus": "0.5"}, "run": "echo started; sleep 120"},
        cluster_name=cluster_name,
        endpoint=sky_server.endpoint,
        deferrable=False,
        poll_interval=0.2,
    )
    killed: dict[str, Any] = {}

    def kill_when_running() -> None:
        # Airflow calls on_kill from the worker's signal handler; any thread will do here.
        try:
            with sky_server.client() as client:
                wait_until(lambda: launch._operation_name, what="the launch request")
                launched = client.operation(launch._operation_name).result(timeout=60)
                killed["job_id"] = launched.job_id
                wait_until(lambda: job_status(client, cluster_name, launched.job_id) == "RUNNING", what="the job")
                launch.on_kill()
                killed["status"] = job_status(client, cluster_name, launched.job_id)
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            killed["error"] = err
            with sky_server.client() as client:  # let execute return
                client.cancel_jobs(cluster_name, all=True)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        with pytest.raises(AirflowException, match="ended CANCELLED"):
            launch.execute(context("launch"))
    finally:
        killer.join(60)
    assert "error" not in killed, killed
    assert killed["status"] == "CANCELLED"


def test_connection_carries_credentials(sky_deploy_server: LocalServer, monkeypatch, cluster_name: str) -> None:
    """A deployed server needs credentials: they come from the connection,
    which the trigger resolves by id (nothing secret is serialized)."""
    user, password = sky_deploy_server.credentials
    host, port = sky_deploy_server.address.rsplit(":", 1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SKY_DEPLOYED",
        json.dumps({"conn_type": "generic", "host": host, "port": int(port), "login": user, "password": password}),
    )
    launch = SkyLaunchOperator(task_id="launch", task=TASK, cluster_name=cluster_name, sky_conn_id="sky_deployed")
    ctx = context("launch")
    trigger = defer(launch, ctx)
    assert password not in json.dumps(trigger.serialize())
    event = fire(rebuilt(trigger))
    assert event["status"] == "success" and event["job_status"] == "SUCCEEDED", event
    log = capture(launch)
    launch.execute_complete(ctx, event)
    assert "first line" in log.lines

    anonymous = SkyDownOperator(task_id="down", cluster_name=cluster_name, endpoint=sky_deploy_server.endpoint)
    with pytest.raises(AirflowException) as refused:
        anonymous.execute(context("down"))
    assert isinstance(refused.value.__cause__, SkyError)
    assert refused.value.__cause__.code.name == "UNAUTHENTICATED"

    down = SkyDownOperator(task_id="down", cluster_name=cluster_name, sky_conn_id="sky_deployed")
    down_ctx = context("down")
    down.execute_complete(down_ctx, fire(rebuilt(defer(down, down_ctx))))
    with sky_deploy_server.client() as client:
        assert client.status([cluster_name]) == []


# --------------------------------------------------------------------------- #
# Managed jobs
# --------------------------------------------------------------------------- #


def job_clusters(client, job_name: str) -> list[str]:
    """The clusters of the managed jobs named ``job_name`` (``<name>-<id>-<4 chars>``)."""
    return [c.name for c in client.status(all_users=True) if c.name.startswith(f"{job_name}-")]


def test_managed_job_trigger_serializes_no_credentials() -> None:
    trigger = SkyManagedJobTrigger("operations/abc", sky_conn_id="sky", job_id=4)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sky_airflow.SkyManagedJobTrigger"
    assert kwargs == {
        "operation_name": "operations/abc",
        "endpoint": None,
        "sky_conn_id": "sky",
        "job_id": 4,
        "poll_interval": 5.0,
    }
    assert rebuilt(trigger).serialize() == trigger.serialize()


def test_managed_job_deferred_to_success(sky_server: LocalServer) -> None:
    name = f"af-{uuid.uuid4().hex[:8]}"
    operator = SkyManagedJobOperator(
        task_id="train",
        task=[{"name": "prepare", "run": "echo preparing"}, {"name": "train", **TASK}],
        job_name=name,
        endpoint=sky_server.endpoint,
    )
    ctx = context("train")
    trigger = defer(operator, ctx)
    assert isinstance(trigger, SkyManagedJobTrigger)
    assert defer(operator, ctx).operation_name == trigger.operation_name  # a retried submission of the same try

    event = fire(rebuilt(trigger))
    assert event["status"] == "success" and event["job_status"] == "SUCCEEDED", event
    assert event["job_name"] == name and event["recovery_count"] == 0
    log = capture(operator)
    result = operator.execute_complete(ctx, event)
    assert result == {
        "operation": trigger.operation_name,
        "job_id": event["job_id"],
        "job_name": name,
        "job_status": "SUCCEEDED",
        "recovery_count": 0,
    }
    assert {"preparing", "first line", "second line"} <= set(log.lines), log.lines
    with sky_server.client() as client:
        assert job_clusters(client, name) == []  # the job's clusters went with it


def test_managed_job_failure_fails_the_task_after_its_restarts(sky_server: LocalServer) -> None:
    operator = SkyManagedJobOperator(
        task_id="flaky",
        task={
            "resources": {"cpus": "0.5", "job_recovery": {"max_restarts_on_errors": 1}},
            "run": "echo trying; exit 5",
        },
        endpoint=sky_server.endpoint,
        deferrable=False,
    )
    log = capture(operator)
    with pytest.raises(AirflowException, match=r"managed job \d+ ended FAILED: the task failed"):
        operator.execute(context("flaky"))
    assert log.lines.count("trying") == 2, log.lines  # both attempts' output is in the task log
    assert any("after 1 recoveries" in line for line in log.lines), log.lines


def test_managed_job_refused_request_fails_the_task(sky_server: LocalServer) -> None:
    operator = SkyManagedJobOperator(
        task_id="bad", task={"resources": {"cpus": "lots"}, "run": "true"}, endpoint=sky_server.endpoint
    )
    with pytest.raises(AirflowException, match="refused the managed job: INVALID_ARGUMENT"):
        operator.execute(context("bad"))


def test_on_kill_cancels_the_managed_job(sky_server: LocalServer) -> None:
    """Not deferred: the worker waits, and on_kill cancels the running job."""
    name = f"af-kill-{uuid.uuid4().hex[:8]}"
    operator = SkyManagedJobOperator(
        task_id="long",
        task={"resources": {"cpus": "0.5"}, "run": "echo started; sleep 120"},
        job_name=name,
        endpoint=sky_server.endpoint,
        deferrable=False,
    )
    killed: dict[str, Any] = {}

    def kill_when_running() -> None:
        try:
            with sky_server.client() as client:
                wait_until(lambda: operator._operation_name, what="the launch request")
                job_id = client.operation(operator._operation_name).result(timeout=60).job_id
                with client.jobs_logs(job_id) as stream:  # once it printed, it runs
                    for _, data in stream:
                        if b"started" in data:
                            break
                killed["clusters"] = job_clusters(client, name)
                operator.on_kill()
                killed["status"] = client.jobs_queue(job_ids=[job_id])[0].status
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            killed["error"] = err
            with sky_server.client() as client:  # let execute return
                client.jobs_cancel(name=name)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        with pytest.raises(AirflowException, match="ended CANCELLED"):
            operator.execute(context("long"))
    finally:
        killer.join(120)
    assert "error" not in killed, killed
    assert len(killed["clusters"]) == 1
    assert killed["status"] == v1.ManagedJobStatus.MANAGED_JOB_STATUS_CANCELLED
    with sky_server.client() as client:
        assert job_clusters(client, name) == []
