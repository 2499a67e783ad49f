"""Airflow operators and a trigger for a SkyPilot-compatible API server.

``SkyLaunchOperator``, ``SkyExecOperator`` and ``SkyDownOperator`` submit a
request to the API server and defer to ``SkyOperationTrigger``, which waits for
the request (a ``google.longrunning`` operation) and then for the job it
started, over ``grpc.aio`` in the triggerer. When the trigger fires, the task
resumes in ``execute_complete``: it copies the job's output into the task log
and fails the task when the request or the job failed.

``SkyManagedJobOperator`` submits a managed job (``sky jobs launch``: the job
runs on a cluster of its own, which the API server launches, relaunches when
it is lost, and tears down at the end) and defers to ``SkyManagedJobTrigger``,
which waits for the job's final state; the task fails unless it is SUCCEEDED.

Where the API server is and how to log in comes from an Airflow connection
(``sky_conn_id``), see :func:`client_settings`; without one, from the client's
own endpoint resolution (``SKYPILOT_API_SERVER_ENDPOINT``, then
``~/.sky/skyconfig.yaml``, then ``http://127.0.0.1:46580``) on the machine
that runs the code. Credentials are never serialized into the trigger.

Put this module where the scheduler, the workers and the triggerer can import
it, e.g. in ``$AIRFLOW_HOME/plugins``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import yaml
from airflow.exceptions import AirflowException
from airflow.hooks.base import BaseHook
from airflow.models import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

import skypilot_client
from skypilot_client import AsyncClient, Client, SkyError, Task

if TYPE_CHECKING:
    from airflow.models.connection import Connection
    from airflow.utils.context import Context

__all__ = [
    "SkyBaseOperator",
    "SkyDownOperator",
    "SkyExecOperator",
    "SkyLaunchOperator",
    "SkyManagedJobOperator",
    "SkyManagedJobTrigger",
    "SkyOperationTrigger",
    "client_settings",
    "idempotency_key",
]

# Job states after which a job never changes again.
FINISHED_JOB_STATES = frozenset({"SUCCEEDED", "FAILED", "FAILED_SETUP", "CANCELLED"})
# The server refuses longer idempotency keys.
MAX_IDEMPOTENCY_KEY_CHARS = 256


# --------------------------------------------------------------------------- #
# Connection and client
# --------------------------------------------------------------------------- #


def client_settings(conn: Connection) -> dict[str, Any]:
    """Keyword arguments of ``skypilot_client.Client`` for an Airflow connection.

    The connection (any ``conn_type``, e.g. ``generic`` or ``http``) holds:

    * ``host``: the server's host name, or a whole URL (``http://host:46580``,
      ``https://sky.example.com``); with a bare host name, ``schema`` gives the
      scheme (``http`` when empty, ``https`` for TLS) and ``port`` the port;
    * ``login`` and ``password``: HTTP basic credentials; a password without a
      login is taken as a service-account token (``sky_...``);
    * extras (JSON): ``endpoint`` (a URL that overrides host, schema and port),
      ``token`` (service-account token), ``ca_cert`` (path of a PEM bundle to
      trust for ``https://``), ``timeout`` (seconds per call).
    """
    extra = conn.extra_dejson or {}
    endpoint = extra.get("endpoint") or None
    if not endpoint and conn.host:
        host = conn.host.strip().rstrip("/")
        if "://" in host:
            endpoint = host
        else:
            endpoint = f"{(conn.schema or 'http').strip()}://{host}"
        if conn.port and not _has_port(endpoint):
            endpoint = f"{endpoint}:{conn.port}"
    settings: dict[str, Any] = {"endpoint": endpoint}
    token = extra.get("token") or None
    if conn.login:
        settings["username"] = conn.login
        settings["password"] = conn.password or ""
    elif conn.password:
        token = token or conn.password
    if token:
        settings["token"] = token
    if extra.get("ca_cert"):
        settings["ca_cert"] = extra["ca_cert"]
    if extra.get("timeout"):
        settings["timeout"] = float(extra["timeout"])
    return settings


def _has_port(url: str) -> bool:
    authority = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return ":" in authority.rsplit("]", 1)[-1]


def _settings(sky_conn_id: str | None, endpoint: str | None) -> dict[str, Any]:
    """Client settings: the connection's, with ``endpoint`` taking precedence."""
    settings = client_settings(BaseHook.get_connection(sky_conn_id)) if sky_conn_id else {}
    if endpoint:
        settings["endpoint"] = endpoint
    return settings


def idempotency_key(dag_id: str, task_id: str, run_id: str, try_number: int, map_index: int = -1) -> str:
    """The key of one task try's request: a retried submission of the same try
    (a lost reply, a restarted worker) returns the request already made; the
    next try of the task makes a new one."""
    parts = [dag_id, task_id, run_id, str(try_number)]
    if map_index >= 0:
        parts.append(str(map_index))
    key = "airflow:" + "/".join(parts)
    if len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable():
        return key
    return "airflow:sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _enum_name(message: Any, field: str, prefix: str) -> str:
    """The short name of an enum field, e.g. ``SUCCEEDED`` for JOB_STATUS_SUCCEEDED."""
    number = getattr(message, field)
    value = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    name = value.name if value is not None else str(number)
    return name[len(prefix) :] if name.startswith(prefix) else name


def _job_state(job: Any) -> dict[str, Any]:
    return {
        "job_status": _enum_name(job, "status", "JOB_STATUS_"),
        "exit_code": job.exit_code if job.HasField("exit_code") else None,
        "job_message": job.message,
    }


def _error_event(operation: str, err: SkyError, **extra: Any) -> TriggerEvent:
    return TriggerEvent(
        {
            "status": "error",
            "operation": operation,
            "code": err.code.name if err.code is not None else "UNKNOWN",
            "reason": err.reason,
            "message": err.message,
            "retryable": err.retryable,
            **extra,
        }
    )


# --------------------------------------------------------------------------- #
# Trigger
# --------------------------------------------------------------------------- #


class SkyOperationTrigger(BaseTrigger):
    """Waits for an API-server request and then for the job it started.

    Fires one event: ``{"status": "success", "operation", "cluster_name",
    "job_id", "job_status", "exit_code", "job_message"}`` (``job_id`` is 0 for
    requests that start no job, e.g. down), or ``{"status": "error",
    "operation", "code", "reason", "message", "retryable"}`` when the request
    failed or was cancelled. A failed *job* is a ``success`` event with its
    ``job_status``: the operator decides what that means for the task.

    Serializes the endpoint, the operation name, the connection id and the
    cluster/job ids; the triggerer resolves the connection itself.
    """

    def __init__(
        self,
        operation_name: str,
        *,
        endpoint: str | None = None,
        sky_conn_id: str | None = None,
        cluster_name: str = "",
        job_id: int = 0,
        wait_for_job: bool = True,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.operation_name = operation_name
        self.endpoint = endpoint
        self.sky_conn_id = sky_conn_id
        self.cluster_name = cluster_name
        self.job_id = int(job_id)
        self.wait_for_job = wait_for_job
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "operation_name": self.operation_name,
                "endpoint": self.endpoint,
                "sky_conn_id": self.sky_conn_id,
                "cluster_name": self.cluster_name,
                "job_id": self.job_id,
                "wait_for_job": self.wait_for_job,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await _trigger_client(self.sky_conn_id, self.endpoint)
        try:
            yield await self._wait(client)
        finally:
            await client.close()

    async def _wait(self, client: AsyncClient) -> TriggerEvent:
        cluster, job_id = self.cluster_name, self.job_id
        try:
            response = await (await client.operation(self.operation_name)).result()
        except SkyError as err:
            return _error_event(self.operation_name, err, cluster_name=cluster, job_id=job_id)
        cluster = getattr(response, "cluster_name", "") or cluster
        job_id = int(getattr(response, "job_id", 0) or job_id)
        event: dict[str, Any] = {
            "status": "success",
            "operation": self.operation_name,
            "cluster_name": cluster,
            "job_id": job_id,
            "job_status": None,
            "exit_code": None,
            "job_message": "",
        }
        if self.wait_for_job and job_id:
            try:
                job = await self._wait_for_job(client, cluster, job_id)
            except SkyError as err:
                return _error_event(self.operation_name, err, cluster_name=cluster, job_id=job_id)
            if job is None:
                event.update(
                    status="error",
                    code="NOT_FOUND",
                    reason="JOB_NOT_FOUND",
                    message=f"job {job_id} is no longer on cluster {cluster!r} (torn down?)",
                    retryable=False,
                )
            else:
                event.update(_job_state(job))
        return TriggerEvent(event)

    async def _wait_for_job(self, client: AsyncClient, cluster: str, job_id: int) -> Any:
        """Follows the job's log from its current end (the stream ends when
        the job does, with the job's final state) and drops what it reads:
        ``execute_complete`` writes the whole log. Returns the job, ``None``
        when the job is gone. A stream cut short is followed again."""
        offset: int | None = None
        while True:
            stream = client.job_logs(cluster, job_id, follow=True, offset=offset, tail_lines=0)
            try:
                async for _chunk in stream:
                    pass
            except SkyError as err:
                if not err.retryable:
                    raise
            finally:
                offset = stream.offset
                await stream.aclose()
            job = stream.job
            if job is None or not _finished(job):
                jobs = await client.queue(cluster)
                job = next((job for job in jobs if job.job_id == job_id), None)
            if job is None or _finished(job):
                return job
            await asyncio.sleep(self.poll_interval)


def _finished(job: Any) -> bool:
    return _enum_name(job, "status", "JOB_STATUS_") in FINISHED_JOB_STATES


async def _trigger_client(sky_conn_id: str | None, endpoint: str | None) -> AsyncClient:
    """A client in the triggerer: the connection is resolved there (it may
    live in the metadata database: off the event loop)."""
    if sky_conn_id:
        settings = client_settings(await asyncio.to_thread(BaseHook.get_connection, sky_conn_id))
    else:
        settings = {}
    if endpoint:
        settings["endpoint"] = endpoint
    return AsyncClient(**settings)


def _managed_job_state(job: Any) -> dict[str, Any]:
    return {
        "job_id": int(job.job_id),
        "job_name": job.name,
        "job_status": _enum_name(job, "status", "MANAGED_JOB_STATUS_"),
        "recovery_count": int(job.recovery_count),
        "failure_reason": job.failure_reason,
    }


class SkyManagedJobTrigger(BaseTrigger):
    """Waits for a managed job's launch request and then for the job's final
    state (SUCCEEDED, FAILED, FAILED_SETUP, FAILED_NO_RESOURCE,
    FAILED_CONTROLLER or CANCELLED), following the controller's log of the job
    over ``grpc.aio``.

    Fires one event: ``{"status": "success", "operation", "job_id",
    "job_name", "job_status", "recovery_count", "failure_reason"}``, or
    ``{"status": "error", "operation", "code", "reason", "message",
    "retryable"}`` when the request failed or the job cannot be followed. A
    failed *job* is a ``success`` event with its ``job_status``. The job is
    followed again (after ``poll_interval``) when the server stays away
    longer than the client retries.
    """

    def __init__(
        self,
        operation_name: str,
        *,
        endpoint: str | None = None,
        sky_conn_id: str | None = None,
        job_id: int = 0,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.operation_name = operation_name
        self.endpoint = endpoint
        self.sky_conn_id = sky_conn_id
        self.job_id = int(job_id)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "operation_name": self.operation_name,
                "endpoint": self.endpoint,
                "sky_conn_id": self.sky_conn_id,
                "job_id": self.job_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await _trigger_client(self.sky_conn_id, self.endpoint)
        try:
            yield await self._wait(client)
        finally:
            await client.close()

    async def _wait(self, client: AsyncClient) -> TriggerEvent:
        job_id = self.job_id
        if not job_id:
            try:
                launched = await (await client.operation(self.operation_name)).result()
            except SkyError as err:
                return _error_event(self.operation_name, err, job_id=0)
            job_id = int(launched.job_id)
        while True:
            try:
                job = await client.jobs_wait(job_id)
            except SkyError as err:
                if not err.retryable:
                    return _error_event(self.operation_name, err, job_id=job_id)
                await asyncio.sleep(self.poll_interval)
                continue
            return TriggerEvent({"status": "success", "operation": self.operation_name, **_managed_job_state(job)})


# --------------------------------------------------------------------------- #
# Operators
# --------------------------------------------------------------------------- #


class SkyBaseOperator(BaseOperator):
    """Submits one request and waits for it (and its job) in the triggerer.

    :param sky_conn_id: Airflow connection with the endpoint and credentials
        (see :func:`client_settings`); ``None`` uses the client's own endpoint
        resolution.
    :param endpoint: an endpoint URL that overrides the connection's.
    :param wait_for_job: also wait for the job the request starts, and fail the
        task when it does not succeed.
    :param deferrable: wait in the triggerer (default); ``False`` waits in the
        worker with the same code.
    :param poll_interval: seconds between job-state checks when a log stream
        ended before its job.
    :param cancel_job_on_kill: ``on_kill`` also cancels the job the request
        started, when it is known.
    """

    template_fields: Sequence[str] = ("cluster_name", "sky_conn_id", "endpoint")
    ui_color = "#d6e9ff"
    #: whether the request starts a job
    starts_job = True

    def __init__(
        self,
        *,
        cluster_name: str = "",
        sky_conn_id: str | None = None,
        endpoint: str | None = None,
        wait_for_job: bool = True,
        deferrable: bool = True,
        poll_interval: float = 5.0,
        cancel_job_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster_name = cluster_name
        self.sky_conn_id = sky_conn_id
        self.endpoint = endpoint
        self.wait_for_job = wait_for_job and self.starts_job
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.cancel_job_on_kill = cancel_job_on_kill
        # What on_kill cancels; set once known.
        self._operation_name: str | None = None
        self._job: tuple[str, int] | None = None

    # -- subclasses ---------------------------------------------------------

    def submit(self, client: Client, key: str) -> skypilot_client.Operation:
        """Submits the request with the idempotency key ``key``."""
        raise NotImplementedError

    # -- Airflow ------------------------------------------------------------

    def client(self) -> Client:
        """A client for the configured endpoint and credentials."""
        return Client(**_settings(self.sky_conn_id or None, self.endpoint or None))

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        key = idempotency_key(ti.dag_id, ti.task_id, ti.run_id, ti.try_number, getattr(ti, "map_index", -1))
        with self.client() as client:
            try:
                operation = self.submit(client, key)
            except SkyError as err:
                raise AirflowException(f"the API server refused the request: {err}") from err
        self._operation_name = operation.name
        self.log.info("Submitted %s (idempotency key %s)", operation.name, key)
        trigger = SkyOperationTrigger(
            operation.name,
            endpoint=self.endpoint or None,
            sky_conn_id=self.sky_conn_id or None,
            cluster_name=self.cluster_name,
            wait_for_job=self.wait_for_job,
            poll_interval=self.poll_interval,
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        event = asyncio.run(_first_event(trigger.run()))
        return self.execute_complete(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resumes after the trigger fired: logs, then succeeds or fails the task."""
        self._operation_name = event.get("operation") or self._operation_name
        cluster, job_id = event.get("cluster_name") or self.cluster_name, int(event.get("job_id") or 0)
        if job_id:
            self._job = (cluster, job_id)
        with self.client() as client:
            self._log_request(client)
            if event.get("status") != "success":
                label = event.get("reason") or event.get("code") or "ERROR"
                raise AirflowException(
                    f"request {event.get('operation')} did not succeed ({label}): {event.get('message')}"
                )
            if job_id and self.wait_for_job:
                self._log_job(client, cluster, job_id)
                self.log.info("Job %s on %s ended %s", job_id, cluster, event.get("job_status"))
        result = {k: event.get(k) for k in ("operation", "cluster_name", "job_id", "job_status", "exit_code")}
        if self.wait_for_job and job_id and event.get("job_status") != "SUCCEEDED":
            detail = f" (exit code {event['exit_code']})" if event.get("exit_code") is not None else ""
            message = f": {event['job_message']}" if event.get("job_message") else ""
            raise AirflowException(f"job {job_id} on {cluster} ended {event.get('job_status')}{detail}{message}")
        return result

    def on_kill(self) -> None:
        """Cancels the request (when still running) and, with
        ``cancel_job_on_kill``, the job it started (when known)."""
        if not self._operation_name and not self._job:
            return
        try:
            with self.client() as client:
                if self._operation_name:
                    operation = client.operation(self._operation_name)
                    if not operation.done():
                        self.log.info("Cancelling %s", self._operation_name)
                        operation.cancel()
                    elif self.starts_job and not self._job and not operation.refresh().HasField("error"):
                        # Done: its job may be running (the worker is still waiting for it).
                        response = operation.result()
                        if getattr(response, "job_id", 0):
                            self._job = (response.cluster_name or self.cluster_name, int(response.job_id))
                if self._job and self.cancel_job_on_kill:
                    cluster, job_id = self._job
                    job = next((job for job in client.queue(cluster) if job.job_id == job_id), None)
                    if job is not None and not _finished(job):
                        self.log.info("Cancelling job %s on %s", job_id, cluster)
                        client.cancel_jobs(cluster, [job_id]).result(timeout=30)
        except (SkyError, TimeoutError) as err:
            self.log.warning("Could not cancel: %s", err)

    # -- logs ---------------------------------------------------------------

    def _log_request(self, client: Client) -> None:
        if not self._operation_name:
            return
        try:
            _log_lines(self.log.info, "[request] ", client.operation(self._operation_name).logs(follow=False))
        except SkyError as err:
            self.log.warning("Could not read the log of %s: %s", self._operation_name, err)

    def _log_job(self, client: Client, cluster: str, job_id: int) -> None:
        self.log.info("Output of job %s on %s:", job_id, cluster)
        try:
            _log_lines(self.log.info, "", client.job_logs(cluster, job_id, follow=False))
        except SkyError as err:  # e.g. the cluster is already gone (launched with down=True)
            self.log.warning("Could not read the output of job %s on %s: %s", job_id, cluster, err)


def _log_lines(write: Callable[..., None], prefix: str, chunks: Any) -> int:
    """Writes a stream of (offset, bytes) chunks line by line; returns the byte count."""
    pending, total = b"", 0
    for _offset, data in chunks:
        total += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            write("%s%s", prefix, line.decode("utf-8", "replace").rstrip("\r"))
    if pending:
        write("%s%s", prefix, pending.decode("utf-8", "replace"))
    return total


async def _first_event(events: AsyncIterator[TriggerEvent]) -> dict[str, Any]:
    async for event in events:
        return event.payload
    raise AirflowException("the trigger ended without an event")


def _task(task: str | dict[str, Any]) -> Task | str:
    """A task: a dict is read as task YAML; a string (YAML text, a path to a
    YAML file, or a shell command) is left to the client."""
    if isinstance(task, dict):
        return Task.from_yaml(yaml.safe_dump(task, sort_keys=False))
    return task


def _tasks(tasks: str | dict[str, Any] | Sequence[str | dict[str, Any]]) -> Any:
    """A managed job's tasks: a list is a pipeline of tasks (each as `_task`
    reads it); a string (a pipeline or task YAML, text or a path, or a shell
    command) is left to the client."""
    if isinstance(tasks, (list, tuple)):
        return [_task(task) for task in tasks]
    return _task(tasks)


class SkyLaunchOperator(SkyBaseOperator):
    """``sky launch``: creates (or reuses) a cluster and runs the task on it.

    :param task: a task YAML (text, or the path of a file on the worker), the
        same as a dict, or a shell command; templated.
    :param cluster_name: the cluster; empty for a generated name (the result
        carries it: ``{{ ti.xcom_pull(task_ids=...)['cluster_name'] }}``).
    :param down: tear the cluster down when its jobs are done.
    :param idle_minutes_to_autostop: autostop after this many idle minutes.

    Returns (XCom) ``{"operation", "cluster_name", "job_id", "job_status", "exit_code"}``.
    """

    template_fields: Sequence[str] = (*SkyBaseOperator.template_fields, "task")

    def __init__(
        self,
        *,
        task: str | dict[str, Any],
        cluster_name: str = "",
        down: bool = False,
        idle_minutes_to_autostop: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cluster_name=cluster_name, **kwargs)
        self.task = task
        self.down = down
        self.idle_minutes_to_autostop = idle_minutes_to_autostop

    def submit(self, client: Client, key: str) -> skypilot_client.Operation:
        return client.launch(
            _task(self.task),
            self.cluster_name,
            idempotency_key=key,
            down=self.down,
            idle_minutes_to_autostop=self.idle_minutes_to_autostop,
        )


class SkyExecOperator(SkyBaseOperator):
    """``sky exec``: runs the task as a new job on an existing cluster.

    :param cluster_name: the cluster (templated).
    :param task: as for ``SkyLaunchOperator``.
    """

    template_fields: Sequence[str] = (*SkyBaseOperator.template_fields, "task")

    def __init__(self, *, cluster_name: str, task: str | dict[str, Any], **kwargs: Any) -> None:
        super().__init__(cluster_name=cluster_name, **kwargs)
        self.task = task

    def submit(self, client: Client, key: str) -> skypilot_client.Operation:
        return client.exec(self.cluster_name, _task(self.task), idempotency_key=key)


class SkyDownOperator(SkyBaseOperator):
    """``sky down``: tears the cluster down (its running jobs are cancelled).

    Usually given ``trigger_rule="all_done"`` so that it runs after failed jobs too.
    """

    starts_job = False
    ui_color = "#ffe1d6"

    def __init__(self, *, cluster_name: str, **kwargs: Any) -> None:
        super().__init__(cluster_name=cluster_name, **kwargs)

    def submit(self, client: Client, key: str) -> skypilot_client.Operation:
        return client.down(self.cluster_name, idempotency_key=key)


class SkyManagedJobOperator(BaseOperator):
    """``sky jobs launch``: submits a managed job and waits for its final state.

    The job runs on a cluster of its own, which the API server launches,
    relaunches when its nodes are lost (or its code fails and
    ``resources.job_recovery`` allows restarts), and tears down when the job
    ends: there is no cluster to manage. The task fails unless the job ends
    SUCCEEDED; the job's output is copied into the task log first.

    :param task: a task YAML (text, or the path of a file on the worker), the
        same as a dict, a pipeline YAML (task documents separated by ``---``),
        a list of tasks (dicts or YAML, run one after another), or a shell
        command; templated.
    :param job_name: the job's name (default: the pipeline's, else its first
        task's); templated.
    :param sky_conn_id: Airflow connection with the endpoint and credentials
        (see :func:`client_settings`).
    :param endpoint: an endpoint URL that overrides the connection's.
    :param deferrable: wait in the triggerer (default); ``False`` waits in the
        worker with the same code.
    :param poll_interval: seconds before following the job again when the
        server stayed away longer than the client retries.
    :param cancel_on_kill: ``on_kill`` cancels the managed job (its cluster
        is torn down).

    Returns (XCom) ``{"operation", "job_id", "job_name", "job_status", "recovery_count"}``.
    """

    template_fields: Sequence[str] = ("task", "job_name", "sky_conn_id", "endpoint")
    ui_color = "#d6f5e0"

    def __init__(
        self,
        *,
        task: str | dict[str, Any] | Sequence[str | dict[str, Any]],
        job_name: str = "",
        sky_conn_id: str | None = None,
        endpoint: str | None = None,
        deferrable: bool = True,
        poll_interval: float = 5.0,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.job_name = job_name
        self.sky_conn_id = sky_conn_id
        self.endpoint = endpoint
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.cancel_on_kill = cancel_on_kill
        # What on_kill cancels; set once known.
        self._operation_name: str | None = None
        self._job_id = 0

    def client(self) -> Client:
        """A client for the configured endpoint and credentials."""
        return Client(**_settings(self.sky_conn_id or None, self.endpoint or None))

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        key = idempotency_key(ti.dag_id, ti.task_id, ti.run_id, ti.try_number, getattr(ti, "map_index", -1))
        with self.client() as client:
            try:
                operation = client.jobs_launch(_tasks(self.task), name=self.job_name, idempotency_key=key)
            except SkyError as err:
                raise AirflowException(f"the API server refused the managed job: {err}") from err
        self._operation_name = operation.name
        self.log.info("Submitted managed job request %s (idempotency key %s)", operation.name, key)
        trigger = SkyManagedJobTrigger(
            operation.name,
            endpoint=self.endpoint or None,
            sky_conn_id=self.sky_conn_id or None,
            poll_interval=self.poll_interval,
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        event = asyncio.run(_first_event(trigger.run()))
        return self.execute_complete(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resumes after the trigger fired: logs, then succeeds or fails the task."""
        self._operation_name = event.get("operation") or self._operation_name
        job_id = int(event.get("job_id") or 0)
        self._job_id = job_id or self._job_id
        if event.get("status") != "success":
            label = event.get("reason") or event.get("code") or "ERROR"
            raise AirflowException(
                f"managed job request {event.get('operation')} did not succeed ({label}): {event.get('message')}"
            )
        with self.client() as client:
            self.log.info("Output of managed job %s (%s):", job_id, event.get("job_name"))
            try:
                _log_lines(self.log.info, "", client.jobs_logs(job_id, follow=False))
            except SkyError as err:
                self.log.warning("Could not read the output of managed job %s: %s", job_id, err)
        status, recoveries = event.get("job_status"), int(event.get("recovery_count") or 0)
        self.log.info("Managed job %s ended %s after %s recoveries", job_id, status, recoveries)
        result = {k: event.get(k) for k in ("operation", "job_id", "job_name", "job_status", "recovery_count")}
        if status != "SUCCEEDED":
            reason = f": {event['failure_reason']}" if event.get("failure_reason") else ""
            raise AirflowException(f"managed job {job_id} ended {status}{reason}")
        return result

    def on_kill(self) -> None:
        """Cancels the request (when still running) and, with
        ``cancel_on_kill``, the managed job (when known and not over)."""
        if not self._operation_name and not self._job_id:
            return
        try:
            with self.client() as client:
                if self._operation_name and not self._job_id:
                    operation = client.operation(self._operation_name)
                    if not operation.done():
                        self.log.info("Cancelling %s", self._operation_name)
                        operation.cancel()
                    elif not operation.refresh().HasField("error"):
                        self._job_id = int(operation.result().job_id)
                if self._job_id and self.cancel_on_kill:
                    job = next(iter(client.jobs_queue(job_ids=[self._job_id])), None)
                    if job is not None and job.status not in skypilot_client.FINAL_MANAGED_JOB_STATUSES:
                        self.log.info("Cancelling managed job %s", self._job_id)
                        client.jobs_cancel([self._job_id]).result(timeout=90)
        except (SkyError, TimeoutError) as err:
            self.log.warning("Could not cancel: %s", err)
