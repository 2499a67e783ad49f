"""The sync client against a real local API server."""

from __future__ import annotations

import pathlib
import threading
import time
import uuid
from typing import List

import grpc
import pytest

from skypilot_client import Client, ErrorReason, Operation, SkyError, Task, v1
from skypilot_client.testing import LocalServer

from _helpers import Gate, closed_port, eventually, job_status, lines

COUNT = "for i in 1 2 3; do echo line $i; sleep 0.2; done"


def test_server_info_and_whoami(sky_client: Client) -> None:
    info = sky_client.server_info()
    assert info.api_version == 1 and info.mode == v1.ServerMode.SERVER_MODE_LOCAL
    me = sky_client.whoami()
    assert me.name == info.user.name and me.role == v1.Role.ROLE_ADMIN


def test_launch_streams_the_job_logs_and_waits(sky_client: Client, cluster_name: str) -> None:
    op = sky_client.launch(Task(run=COUNT, name="count", cpus=0.5), cluster_name)
    assert op.name.startswith("operations/") and op.id in op.name
    assert op.metadata is not None and op.metadata.request_name == "sky.launch"
    launched = op.result(timeout=60)
    assert isinstance(launched, v1.LaunchResponse)
    assert launched.cluster_name == cluster_name and launched.job_id >= 1

    stream = sky_client.job_logs(cluster_name, launched.job_id, follow=True)
    chunks = list(stream)
    assert lines(data for _, data in chunks) == ["line 1", "line 2", "line 3"]
    offsets = [offset for offset, _ in chunks]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert stream.job is not None and stream.job.status == v1.JobStatus.JOB_STATUS_SUCCEEDED
    assert stream.offset == sum(len(data) for _, data in chunks)

    (job,) = sky_client.queue(cluster_name)
    assert (job.job_id, job.name, job.status) == (launched.job_id, "count", v1.JobStatus.JOB_STATUS_SUCCEEDED)
    (cluster,) = sky_client.status([cluster_name])
    assert cluster.status == v1.ClusterStatus.CLUSTER_STATUS_UP

    # Resuming from an offset returns the rest of the log. (How the lines fell
    # into chunks depends on timing; where line 2 starts does not.)
    second = len(b"line 1\n")
    rest = sky_client.job_logs(cluster_name, launched.job_id, follow=False, offset=second).text()
    assert rest == "line 2\nline 3\n"

    executed = sky_client.exec(cluster_name, "echo again").result(timeout=60)
    assert isinstance(executed, v1.ExecResponse) and executed.job_id == launched.job_id + 1
    assert sky_client.job_logs(cluster_name, executed.job_id).text() == "again\n"

    down = sky_client.down(cluster_name).result(timeout=60)
    assert isinstance(down, v1.ClusterActionResponse)
    assert sky_client.status([cluster_name]) == []


def test_down_with_purge_tears_down_a_local_cluster(sky_client: Client, cluster_name: str) -> None:
    sky_client.launch(Task(run="true", cpus=0.5), cluster_name).result(timeout=60)
    down = sky_client.down(cluster_name, purge=True).result(timeout=60)
    assert isinstance(down, v1.ClusterActionResponse) and down.cluster_name == cluster_name
    assert sky_client.status([cluster_name]) == []


def test_operation_logs_watch_and_handles(sky_client: Client, cluster_name: str) -> None:
    op = sky_client.launch("run: echo from-yaml\nresources:\n  cpus: 0.5\n", cluster_name)
    snapshots = list(op.watch())
    assert snapshots[-1].done and all(not s.done for s in snapshots[:-1])
    assert op.done() and op.metadata.state == v1.RequestState.REQUEST_STATE_SUCCEEDED
    log = op.logs().text()
    assert f"Cluster launched: {cluster_name}" in log and "Job submitted" in log
    # Resumable: from an offset the log is the same suffix.
    assert op.logs(follow=False, offset=10).text() == log[10:]

    # A handle for an existing operation, by full name, id or unique prefix.
    for name in (op.name, op.id, op.id[:20]):
        again = sky_client.operation(name)
        assert isinstance(again, Operation) and again.name == op.name
        assert again.result().job_id == op.result().job_id
    listed = sky_client.list_operations(cluster_name=cluster_name)
    assert op.name in [listed_op.name for listed_op in listed]


def test_cancel_a_running_job(sky_client: Client, cluster_name: str) -> None:
    launched = sky_client.launch(Task(run="echo started; sleep 60", cpus=0.5), cluster_name).result(timeout=60)
    stream = sky_client.job_logs(cluster_name, launched.job_id)
    offset, first = next(stream)
    assert (offset, first) == (0, b"started\n")
    assert job_status(sky_client, cluster_name, launched.job_id) == "JOB_STATUS_RUNNING"

    cancelled = sky_client.cancel_jobs(cluster_name, [launched.job_id]).result(timeout=60)
    assert list(cancelled.cancelled_job_ids) == [launched.job_id]
    assert list(stream) == []  # the follow ends with the job
    assert stream.job is not None and stream.job.status == v1.JobStatus.JOB_STATUS_CANCELLED
    assert job_status(sky_client, cluster_name, launched.job_id) == "JOB_STATUS_CANCELLED"


def test_cancel_a_pending_operation(sky_client: Client, cluster_name: str, tmp_path: pathlib.Path) -> None:
    # Requests on one cluster run one at a time: an exec submitted behind a
    # launch held by the gate stays pending until the gate opens.
    gate = Gate(sky_client, cluster_name, tmp_path).close()
    try:
        pending = sky_client.exec(cluster_name, "echo never")
        pending.refresh()
        assert pending.metadata.state == v1.RequestState.REQUEST_STATE_PENDING
        pending.cancel()
    finally:
        gate.open()
    with pytest.raises(SkyError) as info:
        pending.result(timeout=60)
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.CANCELLED, "CANCELLED")
    assert info.value.operation == pending.name
    assert pending.metadata.state == v1.RequestState.REQUEST_STATE_CANCELLED
    with pytest.raises(SkyError) as again:
        pending.cancel()
    assert again.value.reason == "ALREADY_DONE"
    # The exec never ran: the cluster has the gate's job only.
    assert [job.job_id for job in sky_client.queue(cluster_name)] == [gate.launch.result().job_id]


def test_typed_errors(sky_client: Client) -> None:
    with pytest.raises(SkyError) as info:
        sky_client.queue("no-such-cluster")
    error = info.value
    assert (error.code, error.reason, error.domain) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND", "skypilot.v1")
    assert "no-such-cluster" in error.message and not error.retryable

    with pytest.raises(SkyError) as info:
        sky_client.down("no-such-cluster")
    assert info.value.reason == "NOT_FOUND"

    with pytest.raises(SkyError) as info:
        sky_client.launch(Task(run="true", cpus="lots"), "bad-task")
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "resources.cpus" in info.value.message

    with pytest.raises(SkyError) as info:
        sky_client.operation("ffffffff-0000")
    assert info.value.code == grpc.StatusCode.NOT_FOUND

    with pytest.raises(ValueError, match="unknown field"):
        sky_client.launch("name: x\nrun: echo hi\nbogus: 1\n", "bad-task")


def test_typed_error_reasons_from_the_server(sky_client: Client, cluster_name: str) -> None:
    # An unknown request id.
    with pytest.raises(SkyError) as info:
        sky_client.operation("ffffffff-0000")
    assert (info.value.reason, info.value.error_reason) == ("NOT_FOUND", ErrorReason.ERROR_REASON_NOT_FOUND)
    # A bad task.
    with pytest.raises(SkyError) as info:
        sky_client.launch(Task(run="true", cpus="lots"), "bad-task")
    assert info.value.error_reason == ErrorReason.ERROR_REASON_INVALID_ARGUMENT
    # An idempotency key reused for a different request.
    key = str(uuid.uuid4())
    first = sky_client.launch(Task(run="true", cpus=0.5), cluster_name, idempotency_key=key)
    with pytest.raises(SkyError) as info:
        sky_client.launch(Task(run="echo other", cpus=0.5), cluster_name, idempotency_key=key)
    assert info.value.error_reason == ErrorReason.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert info.value.reason == "IDEMPOTENCY_KEY_REUSED"
    first.result(timeout=60)
    # Cancelling a finished request.
    with pytest.raises(SkyError) as info:
        first.cancel()
    assert info.value.error_reason == ErrorReason.ERROR_REASON_ALREADY_DONE
    # A failed operation carries its reason too.
    failed = sky_client.launch(Task(run="true", cpus=4096), f"py-{uuid.uuid4().hex[:8]}")
    with pytest.raises(SkyError) as info:
        failed.result(timeout=60)
    assert info.value.error_reason == ErrorReason.ERROR_REASON_RESOURCE_EXHAUSTED
    assert info.value.operation == failed.name


def test_a_failed_operation_raises_its_error(sky_client: Client) -> None:
    op = sky_client.launch(Task(run="true", cpus=4096), f"py-{uuid.uuid4().hex[:8]}")
    with pytest.raises(SkyError) as info:
        op.result(timeout=60)
    error = info.value
    assert (error.code, error.reason, error.operation) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RESOURCE_EXHAUSTED",
        op.name,
    )
    assert error.retryable and "CPU" in error.message
    finished = op.wait()
    assert finished.done and finished.error.message == error.message
    assert op.metadata.state == v1.RequestState.REQUEST_STATE_FAILED


def test_idempotency_keys(sky_client: Client, cluster_name: str) -> None:
    task = Task(run="echo once", cpus=0.5)
    key = str(uuid.uuid4())
    first = sky_client.launch(task, cluster_name, idempotency_key=key)
    again = sky_client.launch(task, cluster_name, idempotency_key=key)
    assert again.name == first.name
    with pytest.raises(SkyError) as info:
        sky_client.launch(Task(run="echo other", cpus=0.5), cluster_name, idempotency_key=key)
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    first.result(timeout=60)
    # Without a key, each call gets a fresh one: a second job.
    other = sky_client.exec(cluster_name, "echo once")
    assert other.name != first.name and other.result(timeout=60).job_id == 2


def test_check(sky_client: Client) -> None:
    response = sky_client.check().result(timeout=60)
    assert isinstance(response, v1.CheckResponse)
    assert any(infra.name == "local" and infra.enabled for infra in response.infras)


def test_endpoint_from_env_and_config(
    sky_server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SKYPILOT_SERVICE_ACCOUNT_TOKEN", raising=False)
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", sky_server.endpoint)
    with Client() as client:
        assert client.endpoint == sky_server.endpoint and client.server_info().api_version == 1
    monkeypatch.delenv("SKYPILOT_API_SERVER_ENDPOINT")
    (tmp_path / ".sky").mkdir()
    (tmp_path / ".sky" / "skyconfig.yaml").write_text(f"api_server:\n  endpoint: {sky_server.endpoint}\n")
    with Client() as client:
        assert client.endpoint == sky_server.endpoint and client.server_info().api_version == 1


def test_unavailable_is_retried_with_backoff_then_raised() -> None:
    with closed_port() as port:
        started = time.monotonic()
        with Client(f"http://127.0.0.1:{port}", retry_unavailable_for=0.6, timeout=5) as client:
            with pytest.raises(SkyError) as info:
                client.server_info()
        elapsed = time.monotonic() - started
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.retryable
    assert 0.6 <= elapsed < 5


def test_calls_and_log_streams_ride_through_a_restart(tmp_path: pathlib.Path) -> None:
    with LocalServer() as server, server.client() as client:
        cluster = "restart"
        run = "for i in $(seq 1 12); do echo tick $i; sleep 0.25; done"
        launched = client.launch(Task(run=run, cpus=0.5), cluster).result(timeout=60)
        stream = client.job_logs(cluster, launched.job_id)
        received: List[bytes] = []
        first_tick = threading.Event()

        def follow() -> None:
            for _, data in stream:
                received.append(data)
                first_tick.set()

        reader = threading.Thread(target=follow)
        reader.start()
        assert first_tick.wait(30)
        server.restart()  # the stream breaks with UNAVAILABLE and resumes at its offset
        reader.join(60)
        assert not reader.is_alive()
        assert lines(received) == [f"tick {i}" for i in range(1, 13)]
        assert stream.job is not None and stream.job.status == v1.JobStatus.JOB_STATUS_SUCCEEDED

        # A unary call made while the server is down is retried until it is back.
        server.terminate()
        restarter = threading.Timer(0.5, server.start)
        restarter.start()
        try:
            assert client.queue(cluster)[0].status == v1.JobStatus.JOB_STATUS_SUCCEEDED
        finally:
            restarter.join()
        eventually(lambda: server.process is not None, "the server to be back")
