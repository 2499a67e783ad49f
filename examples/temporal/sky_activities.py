"""Temporal activities that drive a SkyPilot-compatible API server.

``launch``, ``exec`` and ``down`` each submit one request (idempotency key:
the workflow run id plus the activity id, so a retried activity gets the
request its earlier attempt made instead of a second cluster or job), wait for
it, and, for launch and exec, stream the job's output into the activity log
until the job ends. They heartbeat the request's name, the job's id and the
job-log offset reached; a retried activity resumes from its last heartbeat
(``activity.info().heartbeat_details``) and does not print the log again. When
the workflow cancels the activity, it cancels the request and the job before
it ends; when the attempt is only interrupted (timeout, worker shutdown), both
go on and the next attempt picks them up.

``jobs_launch`` submits a managed job (``sky jobs launch``: the job runs on a
cluster of its own, which the API server launches, relaunches when it is
lost, and tears down at the end) and returns its id once it is queued;
``jobs_wait`` streams the managed job's output into the activity log until the
job's final state, heartbeating the offset reached, and fails unless the job
SUCCEEDED. Cancelled by the workflow, either cancels the managed job.

Give them a ``heartbeat_timeout``: Temporal delivers cancellation and notices
a lost worker through heartbeats.

The API server is the input's ``endpoint`` or, when empty, the client's own
resolution on the worker (``SKYPILOT_API_SERVER_ENDPOINT``,
``~/.sky/skyconfig.yaml``, the local default); credentials come from the
worker's environment (``SKYPILOT_SERVICE_ACCOUNT_TOKEN``, or the endpoint URL
set there), never from workflow inputs, which the workflow history keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from skypilot_client import FINAL_MANAGED_JOB_STATUSES, AsyncClient, SkyError

__all__ = [
    "ALL_ACTIVITIES",
    "DownInput",
    "DownResult",
    "ExecInput",
    "JobResult",
    "LaunchInput",
    "ManagedJobInput",
    "ManagedJobResult",
    "ManagedJobSubmitted",
    "ManagedJobWaitInput",
    "Progress",
    "down",
    "exec_task",
    "idempotency_key",
    "jobs_launch",
    "jobs_wait",
    "launch",
]

FINISHED_JOB_STATES = frozenset({"SUCCEEDED", "FAILED", "FAILED_SETUP", "CANCELLED"})
MAX_IDEMPOTENCY_KEY_CHARS = 256
# Heartbeat at least this often while waiting, when the activity has no
# heartbeat timeout (with one: a third of it, at most this).
DEFAULT_HEARTBEAT_EVERY = timedelta(seconds=5)
# How long cancellation may take to reach the server.
CANCEL_TIMEOUT = 30.0


# --------------------------------------------------------------------------- #
# Inputs, results, progress
# --------------------------------------------------------------------------- #


@dataclass
class LaunchInput:
    """``sky launch``: ``task`` is a task YAML (text, or a path on the worker)."""

    task: str
    cluster_name: str = ""
    down: bool = False
    idle_minutes_to_autostop: int | None = None
    endpoint: str | None = None
    # Fail the activity when the job does not succeed.
    fail_on_job_failure: bool = True


@dataclass
class ExecInput:
    """``sky exec``: runs ``task`` as a new job on an existing cluster."""

    cluster_name: str
    task: str
    endpoint: str | None = None
    fail_on_job_failure: bool = True


@dataclass
class DownInput:
    """``sky down``; with ``missing_ok`` a cluster that does not exist (never
    launched, or already torn down) is no error."""

    cluster_name: str
    endpoint: str | None = None
    missing_ok: bool = True


@dataclass
class JobResult:
    """A launch's or exec's job, once it ended."""

    operation: str
    cluster_name: str
    job_id: int
    status: str  # SUCCEEDED, FAILED, FAILED_SETUP or CANCELLED
    exit_code: int | None = None
    message: str = ""
    # Bytes of job log streamed by this attempt: [log_start, log_end).
    log_start: int = 0
    log_end: int = 0


@dataclass
class DownResult:
    # Empty when there was no cluster to tear down.
    operation: str
    cluster_name: str


@dataclass
class ManagedJobInput:
    """``sky jobs launch``: ``task`` is a task or pipeline YAML (text, or a
    path on the worker; documents separated by ``---`` run one after
    another) or a shell command; ``name`` names the job (default: the
    pipeline's, else its first task's)."""

    task: str
    name: str = ""
    endpoint: str | None = None


@dataclass
class ManagedJobSubmitted:
    """A managed job, queued with the API server (its controller)."""

    operation: str
    job_id: int
    name: str


@dataclass
class ManagedJobWaitInput:
    job_id: int
    endpoint: str | None = None
    # Fail the activity when the job does not succeed.
    fail_on_job_failure: bool = True


@dataclass
class ManagedJobResult:
    """A managed job, once it is over (its clusters torn down)."""

    job_id: int
    name: str
    # SUCCEEDED, FAILED, FAILED_SETUP, FAILED_NO_RESOURCE, FAILED_CONTROLLER or CANCELLED
    status: str
    recovery_count: int = 0
    failure_reason: str = ""
    # Bytes of the job's output streamed by this attempt: [log_start, log_end).
    log_start: int = 0
    log_end: int = 0


@dataclass
class Progress:
    """What an attempt heartbeats, and what the next attempt resumes from."""

    operation: str = ""
    cluster_name: str = ""
    job_id: int = 0
    offset: int = 0

    @classmethod
    def from_details(cls, details: Any) -> Progress:
        """The last heartbeat's progress (a dict once it went through
        Temporal's converter), or an empty one."""
        if not details:
            return cls()
        last = details[-1]
        if isinstance(last, Progress):
            return dataclasses.replace(last)
        if isinstance(last, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in last.items() if k in names})
        return cls()

    def details(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def idempotency_key(info: activity.Info, suffix: str = "") -> str:
    """``temporal:<workflow run id>/<activity id>``: the same for every attempt
    of one activity execution."""
    run_id = info.workflow_run_id or f"{info.workflow_id or ''}:{info.task_token.hex()}"
    key = f"temporal:{run_id}/{info.activity_id}{suffix}"
    if len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable():
        return key
    return "temporal:sha256:" + hashlib.sha256(key.encode()).hexdigest()


# --------------------------------------------------------------------------- #
# Activities
# --------------------------------------------------------------------------- #


@activity.defn(name="sky_launch")
async def launch(params: LaunchInput) -> JobResult:
    """Launches the cluster, then streams the job's log until the job ends."""

    async def submit(client: AsyncClient, key: str) -> Any:
        return await client.launch(
            params.task,
            params.cluster_name,
            idempotency_key=key,
            down=params.down,
            idle_minutes_to_autostop=params.idle_minutes_to_autostop,
        )

    run = _Run(params.endpoint, params.cluster_name)
    return await run.job(submit, params.fail_on_job_failure)


@activity.defn(name="sky_exec")
async def exec_task(params: ExecInput) -> JobResult:
    """Submits the task as a job on the cluster and streams its log until it ends."""

    async def submit(client: AsyncClient, key: str) -> Any:
        return await client.exec(params.cluster_name, params.task, idempotency_key=key)

    run = _Run(params.endpoint, params.cluster_name)
    return await run.job(submit, params.fail_on_job_failure)


@activity.defn(name="sky_down")
async def down(params: DownInput) -> DownResult:
    """Tears the cluster down."""

    async def submit(client: AsyncClient, key: str) -> Any:
        return await client.down(params.cluster_name, idempotency_key=key)

    run = _Run(params.endpoint, params.cluster_name)
    try:
        operation = await run.operation_only(submit)
    except ApplicationError as err:
        if params.missing_ok and err.type == "SkyError:NOT_FOUND" and not run.progress.operation:
            activity.logger.info("Cluster %s does not exist: nothing to tear down", params.cluster_name)
            return DownResult(operation="", cluster_name=params.cluster_name)
        raise
    return DownResult(operation=operation, cluster_name=params.cluster_name)


@activity.defn(name="sky_jobs_launch")
async def jobs_launch(params: ManagedJobInput) -> ManagedJobSubmitted:
    """Submits a managed job; returns once it is queued (``jobs_wait`` follows it)."""

    async def submit(client: AsyncClient, key: str) -> Any:
        return await client.jobs_launch(params.task, name=params.name, idempotency_key=key)

    run = _Run(params.endpoint, "", managed=True)
    response = await run.response(submit)
    return ManagedJobSubmitted(operation=run.progress.operation, job_id=int(response.job_id), name=response.name)


@activity.defn(name="sky_jobs_wait")
async def jobs_wait(params: ManagedJobWaitInput) -> ManagedJobResult:
    """Streams the managed job's output until the job is over; returns its final state."""
    run = _Run(params.endpoint, "", managed=True)
    if not run.progress.job_id:
        run.progress.job_id = int(params.job_id)
    return await run.managed_job(params.fail_on_job_failure)


ALL_ACTIVITIES = [launch, exec_task, down, jobs_launch, jobs_wait]


# --------------------------------------------------------------------------- #
# The shared machinery
# --------------------------------------------------------------------------- #


Submit = Callable[[AsyncClient, str], Awaitable[Any]]


class _Run:
    """One attempt of one activity."""

    def __init__(self, endpoint: str | None, cluster_name: str, *, managed: bool = False) -> None:
        # `managed`: the job is a managed job (progress.job_id is its id, there is no cluster).
        self.managed = managed
        self.info = activity.info()
        self.endpoint = endpoint or None
        self.progress = Progress.from_details(self.info.heartbeat_details)
        if not self.progress.cluster_name:
            self.progress.cluster_name = cluster_name
        self.operation: Any = None
        self.job_done = False
        self.log = activity.logger

    # -- entry points -------------------------------------------------------

    async def job(self, submit: Submit, fail_on_job_failure: bool) -> JobResult:
        async with self._session() as client:
            response = await self._request(client, submit)
            self.progress.cluster_name = response.cluster_name or self.progress.cluster_name
            if not self.progress.job_id:
                self.progress.job_id = int(response.job_id)
                self._beat()
            start = self.progress.offset
            job = await self._follow_job(client)
            self.job_done = True
        result = JobResult(
            operation=self.progress.operation,
            cluster_name=self.progress.cluster_name,
            job_id=self.progress.job_id,
            status=_enum_name(job, "status", "JOB_STATUS_"),
            exit_code=job.exit_code if job.HasField("exit_code") else None,
            message=job.message,
            log_start=start,
            log_end=self.progress.offset,
        )
        if fail_on_job_failure and result.status != "SUCCEEDED":
            code = f" (exit code {result.exit_code})" if result.exit_code is not None else ""
            raise ApplicationError(
                f"job {result.job_id} on {result.cluster_name} ended {result.status}{code}"
                + (f": {result.message}" if result.message else ""),
                dataclasses.asdict(result),
                type="SkyJobFailed",
                # The same request would give the same job: retrying is pointless.
                non_retryable=True,
            )
        return result

    async def operation_only(self, submit: Submit) -> str:
        async with self._session() as client:
            await self._request(client, submit)
        return self.progress.operation

    async def response(self, submit: Submit) -> Any:
        """The request's response; for a managed job launch, with its job id heartbeated."""
        async with self._session() as client:
            response = await self._request(client, submit)
            if self.managed and not self.progress.job_id:
                self.progress.job_id = int(response.job_id)
                self._beat()
        return response

    async def managed_job(self, fail_on_job_failure: bool) -> ManagedJobResult:
        async with self._session() as client:
            start = self.progress.offset
            job = await self._follow_managed_job(client)
            self.job_done = True
        result = ManagedJobResult(
            job_id=int(job.job_id),
            name=job.name,
            status=_enum_name(job, "status", "MANAGED_JOB_STATUS_"),
            recovery_count=int(job.recovery_count),
            failure_reason=job.failure_reason,
            log_start=start,
            log_end=self.progress.offset,
        )
        if fail_on_job_failure and result.status != "SUCCEEDED":
            raise ApplicationError(
                f"managed job {result.job_id} ended {result.status}"
                + (f": {result.failure_reason}" if result.failure_reason else ""),
                dataclasses.asdict(result),
                type="SkyManagedJobFailed",
                # The job is over: waiting again gives the same result.
                non_retryable=True,
            )
        return result

    # -- the request --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> Any:
        client = AsyncClient(self.endpoint)
        ticker = asyncio.create_task(self._tick())
        try:
            yield client
        except asyncio.CancelledError:
            if _cancelled_for_good():
                await self._cancel(client)
            else:
                self.log.info("Activity interrupted: the request and job go on for the next attempt")
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await client.close()

    async def _request(self, client: AsyncClient, submit: Submit) -> Any:
        """Finds the request of an earlier attempt (from its heartbeat) or
        submits it, and waits for its response."""
        operation = None
        if self.progress.operation:
            try:
                operation = await client.operation(self.progress.operation)
                self.operation = operation
                self.log.info("Resuming %s", operation.name)
            except SkyError as err:
                if err.code.name != "NOT_FOUND":  # else: expired, submit again
                    raise _activity_error(err) from err
        if operation is None:
            operation = await self._submit(client, submit, idempotency_key(self.info))
        try:
            return await operation.result()
        except SkyError as err:
            if not (err.retryable and self.info.attempt > 1 and err.code.name != "CANCELLED"):
                raise _activity_error(err) from err
        # An earlier attempt's request failed in a way that may pass now: the
        # activity's key only returns that failed request, so this attempt
        # submits a new one under a key of its own.
        self.progress = Progress(cluster_name=self.progress.cluster_name)
        operation = await self._submit(client, submit, idempotency_key(self.info, f"#{self.info.attempt}"))
        self.log.info("The earlier request failed (retryable): submitted %s", operation.name)
        try:
            return await operation.result()
        except SkyError as err:
            raise _activity_error(err) from err

    async def _submit(self, client: AsyncClient, submit: Submit, key: str) -> Any:
        try:
            operation = await submit(client, key)
        except SkyError as err:
            raise _activity_error(err) from err
        self.operation = operation
        self.progress.operation = operation.name
        self._beat()
        return operation

    # -- the job ------------------------------------------------------------

    async def _follow_job(self, client: AsyncClient) -> Any:
        """Streams the job's log from the offset reached so far into the
        activity log, heartbeating each chunk's end offset, until the job
        ends; returns the job."""
        cluster, job_id = self.progress.cluster_name, self.progress.job_id
        pending = b""
        while True:
            stream = client.job_logs(cluster, job_id, follow=True, offset=self.progress.offset)
            try:
                async for offset, data in stream:
                    if offset > self.progress.offset and pending:
                        pending = b""  # a gap: never join lines across it
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self.log.info("[%s/%s] %s", cluster, job_id, line.decode("utf-8", "replace").rstrip("\r"))
                    self.progress.offset = offset + len(data)
                    self._beat()
            except SkyError as err:
                if not err.retryable:
                    raise _activity_error(err) from err
            finally:
                await stream.aclose()
            job = stream.job
            if job is None or _enum_name(job, "status", "JOB_STATUS_") not in FINISHED_JOB_STATES:
                try:
                    job = await _find_job(client, cluster, job_id)
                except SkyError as err:
                    raise _activity_error(err) from err
            if job is None:
                raise ApplicationError(
                    f"job {job_id} is no longer on cluster {cluster!r} (torn down?)",
                    type="SkyJobNotFound",
                    non_retryable=True,
                )
            if _enum_name(job, "status", "JOB_STATUS_") in FINISHED_JOB_STATES:
                if pending:
                    self.log.info("[%s/%s] %s", cluster, job_id, pending.decode("utf-8", "replace"))
                return job
            await asyncio.sleep(1.0)

    async def _follow_managed_job(self, client: AsyncClient) -> Any:
        """Streams the managed job's output (every attempt, each after a
        header line) from the offset reached so far into the activity log,
        heartbeating each chunk's end offset, until the job is over; returns
        the job."""
        job_id = self.progress.job_id
        pending = b""
        while True:
            stream = client.jobs_logs(job_id, follow=True, offset=self.progress.offset)
            try:
                async for offset, data in stream:
                    if offset > self.progress.offset and pending:
                        pending = b""  # a gap: never join lines across it
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self.log.info("[managed job %s] %s", job_id, line.decode("utf-8", "replace").rstrip("\r"))
                    self.progress.offset = offset + len(data)
                    self._beat()
            except SkyError as err:
                if not err.retryable:
                    raise _activity_error(err) from err
            finally:
                await stream.aclose()
            job = stream.job
            if job is None or job.status not in FINAL_MANAGED_JOB_STATUSES:
                try:
                    job = next(iter(await client.jobs_queue(job_ids=[job_id])), None)
                except SkyError as err:
                    raise _activity_error(err) from err
            if job is None:
                raise ApplicationError(
                    f"managed job {job_id} does not exist", type="SkyManagedJobNotFound", non_retryable=True
                )
            if job.status in FINAL_MANAGED_JOB_STATUSES:
                if pending:
                    self.log.info("[managed job %s] %s", job_id, pending.decode("utf-8", "replace"))
                return job
            await asyncio.sleep(1.0)

    # -- heartbeats and cancellation ----------------------------------------

    def _beat(self) -> None:
        activity.heartbeat(self.progress.details())

    async def _tick(self) -> None:
        """Heartbeats while nothing else does (waiting for a request, a quiet
        job), so that cancellation reaches the activity."""
        every = DEFAULT_HEARTBEAT_EVERY
        if self.info.heartbeat_timeout:
            every = min(every, self.info.heartbeat_timeout / 3)
        while True:
            await asyncio.sleep(every.total_seconds())
            self._beat()

    async def _cancel(self, client: AsyncClient) -> None:
        """Cancels the request (when not done) and the job (when not ended),
        shielded from the cancellation that brought us here."""

        async def cancel() -> None:
            if self.operation is not None:
                try:
                    snapshot = await self.operation.refresh()
                    if not snapshot.done:
                        self.log.info("Cancelling %s", self.operation.name)
                        await self.operation.cancel()
                    elif not self.progress.job_id and not snapshot.HasField("error"):
                        # Done just now: its job may already run.
                        response = await self.operation.result()
                        self.progress.job_id = int(getattr(response, "job_id", 0) or 0)
                except SkyError as err:
                    self.log.warning("Could not cancel %s: %s", self.operation.name, err)
            if self.progress.job_id and not self.job_done and self.managed:
                await self._cancel_managed_job(client)
            elif self.progress.job_id and not self.job_done:
                cluster, job_id = self.progress.cluster_name, self.progress.job_id
                try:
                    job = await _find_job(client, cluster, job_id)
                    if job is not None and _enum_name(job, "status", "JOB_STATUS_") not in FINISHED_JOB_STATES:
                        self.log.info("Cancelling job %s on %s", job_id, cluster)
                        cancel_op = await client.cancel_jobs(cluster, [job_id])
                        await cancel_op.result()
                except SkyError as err:
                    self.log.warning("Could not cancel job %s on %s: %s", job_id, cluster, err)

        task = asyncio.ensure_future(cancel())
        try:
            await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            self.log.warning("Cancellation did not finish in time")

    async def _cancel_managed_job(self, client: AsyncClient) -> None:
        """Cancels the managed job when it is not over (its clusters are torn down)."""
        job_id = self.progress.job_id
        try:
            job = next(iter(await client.jobs_queue(job_ids=[job_id])), None)
            if job is not None and job.status not in FINAL_MANAGED_JOB_STATUSES:
                self.log.info("Cancelling managed job %s", job_id)
                await (await client.jobs_cancel([job_id])).result()
        except SkyError as err:
            self.log.warning("Could not cancel managed job %s: %s", job_id, err)


def _cancelled_for_good() -> bool:
    """Whether the activity's cancellation ends the work: the workflow
    cancelled it, or the Temporal server no longer knows it. A timeout, a
    worker shutdown, a pause or a reset hand the work to a later attempt,
    which resumes the same request and job."""
    details = activity.cancellation_details()
    if details is None:
        return not activity.is_worker_shutdown()
    return (details.cancel_requested or details.not_found) and not details.worker_shutdown


async def _find_job(client: AsyncClient, cluster: str, job_id: int) -> Any:
    jobs = await client.queue(cluster)
    return next((job for job in jobs if job.job_id == job_id), None)


def _enum_name(message: Any, field: str, prefix: str) -> str:
    number = getattr(message, field)
    value = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    name = value.name if value is not None else str(number)
    return name[len(prefix) :] if name.startswith(prefix) else name


def _activity_error(err: SkyError) -> ApplicationError:
    """A failed request as an activity failure: retried only when the server
    says that trying again may help."""
    return ApplicationError(
        str(err),
        {"code": err.code.name, "reason": err.reason, "message": err.message, "operation": err.operation},
        type=f"SkyError:{err.reason or err.code.name}",
        non_retryable=not err.retryable,
    )
