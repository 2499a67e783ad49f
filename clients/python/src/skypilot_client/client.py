"""The synchronous client (`grpc`): `Client`, `Operation` and `LogStream`."""

from __future__ import annotations

import os
import threading
import time
from typing import (
    Any,
    Callable,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
    cast,
)

import grpc
from google.longrunning import operations_pb2

from . import _common, uploads
from ._gen.skypilot.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    infra_pb2,
    infra_pb2_grpc,
    managed_jobs_pb2,
    managed_jobs_pb2_grpc,
    requests_pb2,
    requests_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
    uploads_pb2,
    uploads_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from .endpoint import Connection, resolve_connection
from .errors import SkyError
from .task import PathLike, Pipeline, PipelineLike, Task
from .uploads import OnUpload, Uploaded

T = TypeVar("T")
Chunk = Tuple[int, bytes]


class Client:
    """A connection to a SkyPilot API server.

    ``endpoint`` None resolves it as the CLI does: ``$SKYPILOT_API_SERVER_ENDPOINT``,
    then ``api_server.endpoint`` in ``~/.sky/skyconfig.yaml``, then
    ``http://127.0.0.1:46580``. Credentials in the URL
    (``http://user:pass@host:port``) or ``username``/``password`` mean basic
    auth; ``token`` (else ``$SKYPILOT_SERVICE_ACCOUNT_TOKEN``, else
    ``api_server.service_account_token``) is sent as a bearer token;
    ``https://`` means TLS with the system roots plus ``ca_cert`` (else
    ``api_server.ca_cert``).

    Every unary call gets a deadline of ``timeout`` seconds and is retried,
    with exponential backoff, for up to ``retry_unavailable_for`` seconds while
    the server is UNAVAILABLE (starting, restarting, unreachable). Mutating
    calls carry an idempotency key (a fresh uuid4 unless given), so such a
    retry never submits a request twice. Failures raise `SkyError`.
    """

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        ca_cert: Optional[str] = None,
        timeout: float = 30.0,
        retry_unavailable_for: float = 30.0,
        channel_options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        self._connection: Connection = resolve_connection(
            endpoint, token=token, username=username, password=password, ca_cert=ca_cert
        )
        self.timeout = timeout
        self.retry_unavailable_for = retry_unavailable_for
        self._metadata = self._connection.metadata()
        options = _common.channel_options(list(channel_options or []))
        credentials = _common.channel_credentials(self._connection)
        target = self._connection.endpoint.target
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._clusters = clusters_pb2_grpc.ClusterServiceStub(self._channel)
        self._jobs = clusters_pb2_grpc.JobServiceStub(self._channel)
        self._requests = requests_pb2_grpc.RequestServiceStub(self._channel)
        self._server = server_pb2_grpc.ServerServiceStub(self._channel)
        self._users = users_pb2_grpc.UserServiceStub(self._channel)
        self._infra = infra_pb2_grpc.InfraServiceStub(self._channel)
        self._uploads = uploads_pb2_grpc.UploadServiceStub(self._channel)
        self._managed_jobs = managed_jobs_pb2_grpc.ManagedJobServiceStub(self._channel)
        self._operations = _common.OperationsStub(self._channel)

    # -- connection ---------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The server's URL, the password masked."""
        return self._connection.endpoint.display()

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for stubs of your own (pass `metadata`)."""
        return self._channel

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """Headers sent with every call: API version and credentials."""
        return self._metadata

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.endpoint!r})"

    def stub(self, stub_class: Callable[[grpc.Channel], Any]) -> Any:
        """A generated stub over this client's channel whose unary methods add
        the headers, deadline, retry and `SkyError` mapping of this client, e.g.
        ``client.stub(v1.UserServiceStub).CreateToken(v1.CreateTokenRequest(name="ci"))``."""
        return _StubProxy(self, stub_class(self._channel))

    def _unary(self, method: Callable[..., T], request: Any, *, timeout: Optional[float] = None) -> T:
        backoff = _common.Backoff(self.retry_unavailable_for)
        while True:
            try:
                return method(
                    request,
                    timeout=self.timeout if timeout is None else timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as rpc_error:
                error = SkyError.from_rpc_error(rpc_error)
            pause = _common.retry_delay(error, backoff)
            if pause is None:
                raise error
            time.sleep(pause)

    def _submit(self, method: Callable[..., operations_pb2.Operation], request: Any) -> "Operation":
        return Operation(self, self._unary(method, request))

    # -- clusters -----------------------------------------------------------

    def launch(
        self,
        task: Union[Task, PathLike],
        cluster_name: str = "",
        *,
        idempotency_key: Optional[str] = None,
        down: bool = False,
        idle_minutes_to_autostop: Optional[int] = None,
        no_setup: bool = False,
        dryrun: bool = False,
        on_upload: Optional[OnUpload] = None,
    ) -> "Operation":
        """`sky launch`: creates (or reuses) a cluster and submits the task as a
        job. The operation's result is a LaunchResponse (cluster_name, job_id).
        ``task`` is a Task, a task YAML (path or text) or a shell command.

        When the server runs elsewhere (a ``--deploy`` server, or an endpoint
        not on this host), the task's workdir and file mount sources are
        uploaded first (see `upload`) and the task names the uploads; each
        upload is logged and passed to ``on_upload``."""
        request = clusters_pb2.LaunchRequest(
            task=self._task_spec(task, on_upload),
            cluster_name=cluster_name,
            no_setup=no_setup,
            down=down,
            dryrun=dryrun,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        if idle_minutes_to_autostop is not None:
            request.idle_minutes_to_autostop = idle_minutes_to_autostop
        return self._submit(self._clusters.Launch, request)

    def exec(
        self,
        cluster_name: str,
        task: Union[Task, PathLike],
        *,
        idempotency_key: Optional[str] = None,
        on_upload: Optional[OnUpload] = None,
    ) -> "Operation":
        """`sky exec`: submits the task as a job on an UP cluster (ExecResponse).
        Uploads its local sources first, as `launch` does."""
        request = clusters_pb2.ExecRequest(
            cluster_name=cluster_name,
            task=self._task_spec(task, on_upload),
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return self._submit(self._clusters.Exec, request)

    def _task_spec(self, task: Union[Task, PathLike], on_upload: Optional[OnUpload]) -> clusters_pb2.TaskSpec:
        """The task to send: its local sources uploaded when the server cannot read them."""
        return self._task_specs([Task.coerce(task).to_proto()], on_upload)[0]

    def _task_specs(
        self, specs: List[clusters_pb2.TaskSpec], on_upload: Optional[OnUpload]
    ) -> List[clusters_pb2.TaskSpec]:
        """The tasks to send, each with its local sources uploaded when the server cannot read them."""
        if not any(uploads.sources(spec) for spec in specs):
            return specs
        info = self.server_info()
        if not uploads.runs_elsewhere(info, self._connection.endpoint.host):
            return specs
        limit = uploads.upload_limit(info)
        for spec in specs:
            for what, path, dest in uploads.sources(spec):
                uploads.replace_source(spec, dest, self._upload(what, path, limit, on_upload).reference)
        return specs

    def _cluster_action(
        self, method: Callable[..., Any], cluster_name: str, key: Optional[str], *, purge: bool = False
    ) -> "Operation":
        request = clusters_pb2.ClusterActionRequest(
            cluster_name=cluster_name, purge=purge, idempotency_key=_common.idempotency_key(key)
        )
        return self._submit(method, request)

    def stop(self, cluster_name: str, *, idempotency_key: Optional[str] = None) -> "Operation":
        """`sky stop` (ClusterActionResponse)."""
        return self._cluster_action(self._clusters.Stop, cluster_name, idempotency_key)

    def start(self, cluster_name: str, *, idempotency_key: Optional[str] = None) -> "Operation":
        """`sky start` (ClusterActionResponse)."""
        return self._cluster_action(self._clusters.Start, cluster_name, idempotency_key)

    def down(self, cluster_name: str, *, purge: bool = False, idempotency_key: Optional[str] = None) -> "Operation":
        """`sky down` (``purge``: `sky down --purge`, forget it even where nodes are unreachable)."""
        return self._cluster_action(self._clusters.Down, cluster_name, idempotency_key, purge=purge)

    def autostop(
        self,
        cluster_name: str,
        idle_minutes: int = 5,
        *,
        down: bool = False,
        cancel: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "Operation":
        """`sky autostop` (ClusterActionResponse)."""
        request = clusters_pb2.AutostopRequest(
            cluster_name=cluster_name,
            idle_minutes=idle_minutes,
            down=down,
            cancel=cancel,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return self._submit(self._clusters.Autostop, request)

    def status(
        self, cluster_names: Iterable[str] = (), all_users: bool = False, *, refresh: bool = False
    ) -> List[clusters_pb2.Cluster]:
        """`sky status`: the clusters (names or glob patterns; empty for all).
        With ``refresh`` (`sky status -r`) the server reaches every node now
        rather than report what it last saw (each cluster's ``nodes``)."""
        request = clusters_pb2.ListClustersRequest(
            cluster_names=list(cluster_names), all_users=all_users, refresh=refresh
        )
        return list(self._unary(self._clusters.ListClusters, request).clusters)

    # -- jobs ---------------------------------------------------------------

    def queue(self, cluster_name: str, skip_finished: bool = False, all_users: bool = False) -> List[clusters_pb2.Job]:
        """`sky queue`: a cluster's jobs."""
        request = clusters_pb2.ListJobsRequest(
            cluster_name=cluster_name, skip_finished=skip_finished, all_users=all_users
        )
        return list(self._unary(self._jobs.ListJobs, request).jobs)

    def cancel_jobs(
        self,
        cluster_name: str,
        job_ids: Iterable[int] = (),
        *,
        all: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "Operation":
        """`sky cancel`: no ids and not ``all`` cancels the latest job (CancelJobsResponse)."""
        request = clusters_pb2.CancelJobsRequest(
            cluster_name=cluster_name,
            job_ids=list(job_ids),
            all=all,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return self._submit(self._jobs.CancelJobs, request)

    def job_logs(
        self,
        cluster_name: str,
        job_id: int = 0,
        *,
        follow: bool = True,
        offset: Optional[int] = None,
        tail_lines: Optional[int] = None,
    ) -> "LogStream":
        """`sky logs`: the job's output as ``(offset, data)`` chunks (job 0: the
        latest). With ``follow`` it ends when the job ends; the stream's ``job``
        then holds the job's final state. Resumes from the last offset when the
        server becomes unavailable."""

        def request(at: Optional[int]) -> clusters_pb2.TailJobLogsRequest:
            message = clusters_pb2.TailJobLogsRequest(cluster_name=cluster_name, job_id=job_id, follow=follow)
            if at is not None:
                message.offset = at
            elif tail_lines is not None:
                message.tail_lines = tail_lines
            return message

        def ended(stream: LogStream) -> str:
            # A followed job log ends with the job's final state; without it,
            # the server went away (a restart) and the stream resumes.
            return _common.LOG_DONE if not follow or stream.job is not None else _common.LOG_INTERRUPTED

        return LogStream(self, self._jobs.TailJobLogs, request, offset, ended)

    # -- managed jobs -------------------------------------------------------

    def jobs_launch(
        self,
        tasks: PipelineLike,
        *,
        name: str = "",
        idempotency_key: Optional[str] = None,
        on_upload: Optional[OnUpload] = None,
    ) -> "Operation":
        """`sky jobs launch`: submits a managed job, which runs on a cluster of
        its own that the server launches, relaunches when its nodes are lost
        (or its code fails and ``resources.job_recovery`` allows restarts),
        and tears down when the job ends. The operation succeeds once the job
        is queued; its result is a LaunchManagedJobResponse (job_id, name).

        ``tasks`` is a `Pipeline`, a Task, a pipeline or task YAML (path or
        text; documents separated by ``---`` run one after another), a shell
        command, or a list of tasks. ``name`` names the job (default: the
        pipeline's name, else its first task's). Local workdirs and file
        mounts are uploaded first when the server runs elsewhere, as for
        `launch`. Follow the job with `jobs_logs` or `jobs_wait`."""
        pipeline = Pipeline.coerce(tasks)
        request = managed_jobs_pb2.LaunchManagedJobRequest(
            tasks=self._task_specs(pipeline.to_proto(), on_upload),
            name=name or pipeline.name,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return self._submit(self._managed_jobs.LaunchManagedJob, request)

    def jobs_queue(
        self,
        *,
        all_users: bool = False,
        skip_finished: bool = False,
        job_ids: Iterable[int] = (),
        limit: int = 0,
    ) -> List[managed_jobs_pb2.ManagedJob]:
        """`sky jobs queue`: managed jobs, newest first (the caller's, or with
        ``all_users`` everyone's; only unfinished ones with ``skip_finished``;
        only ``job_ids`` when given; at most ``limit``, 0 for all)."""
        ids: List[int] = list(job_ids)
        jobs: List[managed_jobs_pb2.ManagedJob] = []
        token = ""
        while True:
            request = _common.managed_jobs_page(all_users, skip_finished, ids, limit, len(jobs), token)
            if request is None:
                return jobs
            page = self._unary(self._managed_jobs.ListManagedJobs, request)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    def jobs_cancel(
        self,
        job_ids: Iterable[int] = (),
        *,
        name: str = "",
        all: bool = False,
        all_users: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "Operation":
        """`sky jobs cancel`: the jobs ``job_ids``, else the jobs named
        ``name``, else with ``all`` every unfinished job of the caller (of
        every user with ``all_users``, an admin's right). Their clusters are
        torn down; the operation ends when they are CANCELLED (or, after a
        bound, still CANCELLING) with a CancelManagedJobsResponse. Raises
        SkyError ``ERROR_REASON_NOT_FOUND`` for an unknown job and
        ``ERROR_REASON_ALREADY_DONE`` for a finished one named by id."""
        request = managed_jobs_pb2.CancelManagedJobsRequest(
            job_ids=list(job_ids),
            name=name,
            all=all,
            all_users=all_users,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return self._submit(self._managed_jobs.CancelManagedJobs, request)

    def jobs_logs(
        self,
        job_id: int = 0,
        *,
        name: str = "",
        follow: bool = True,
        controller: bool = False,
        offset: Optional[int] = None,
        tail_lines: Optional[int] = None,
    ) -> "LogStream":
        """`sky jobs logs`: a managed job's output (every attempt, each after a
        header line naming it; job 0: the caller's latest, or the newest named
        ``name``) or, with ``controller``, the controller's log of the job, as
        ``(offset, data)`` chunks. With ``follow`` it ends when the job is
        over; the stream's ``job`` then holds the ManagedJob. Resumes from the
        last offset when the server becomes unavailable."""
        return self._managed_logs(job_id, name, follow, controller, offset, tail_lines, None)

    def jobs_wait(self, job_id: int, timeout: Optional[float] = None) -> managed_jobs_pb2.ManagedJob:
        """Waits until managed job ``job_id`` is over (SUCCEEDED, FAILED,
        FAILED_SETUP, FAILED_NO_RESOURCE, FAILED_CONTROLLER or CANCELLED; its
        cluster torn down) and returns it. Rides through server restarts;
        raises TimeoutError after ``timeout`` seconds (the job goes on) and
        SkyError ``ERROR_REASON_NOT_FOUND`` for an unknown job."""
        _common.check_job_id(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        # The controller's log, from its end: short, and it ends with the job.
        with self._managed_logs(job_id, "", True, True, None, 0, deadline) as stream:
            try:
                for _ in stream:
                    pass
            except TimeoutError:
                raise TimeoutError(f"managed job {job_id} is not over after {timeout} s") from None
        job = cast(managed_jobs_pb2.ManagedJob, stream.job)
        if job is None or job.status not in _common.FINAL_MANAGED_JOB_STATUSES:  # the stream ends when it is over
            raise SkyError(grpc.StatusCode.UNKNOWN, f"managed job {job_id}'s log ended before the job did")
        return job

    def _managed_logs(
        self,
        job_id: int,
        name: str,
        follow: bool,
        controller: bool,
        offset: Optional[int],
        tail_lines: Optional[int],
        deadline: Optional[float],
    ) -> "LogStream":
        def request(at: Optional[int]) -> managed_jobs_pb2.TailManagedJobLogsRequest:
            return _common.managed_job_request(job_id, name, follow, controller, at, tail_lines)

        def ended(stream: LogStream) -> str:
            # A followed log ends with the job's final state; without it, the
            # server went away (a restart) and the stream resumes.
            return _common.LOG_DONE if not follow or stream.job is not None else _common.LOG_INTERRUPTED

        return LogStream(self, self._managed_jobs.TailManagedJobLogs, request, offset, ended, deadline=deadline)

    # -- uploads ------------------------------------------------------------

    def upload(self, path: PathLike, *, on_upload: Optional[OnUpload] = None) -> str:
        """Uploads a folder or a file and returns its reference
        (``sky-upload://<digest>``), to use as a task's workdir or a file
        mount's source. The folder is listed as SkyPilot syncs it
        (``.skyignore`` at its top when present, else its ``.gitignore``
        rules; modes kept, links sent as links); only the contents the server
        lacks are sent. The result is logged and passed to ``on_upload``.
        Raises `uploads.UploadError` for a tree that cannot be read or is over
        the server's limit (before anything is sent), SkyError for the server's
        refusals."""
        path = os.fspath(path)
        return self._upload("", path, uploads.upload_limit(self.server_info()), on_upload).reference

    def _upload(self, what: str, path: str, limit: Optional[int], on_upload: Optional[OnUpload]) -> Uploaded:
        tree = uploads.scan(path, limit)
        missing: Set[str] = set()
        for batch in uploads.digest_batches(tree.digests()):
            request = uploads_pb2.FindMissingBlobsRequest(digests=batch)
            missing.update(self._unary(self._uploads.FindMissingBlobs, request).missing)
        to_send = tree.to_send(missing)
        if to_send:
            stream = uploads.BlobStream(to_send)
            try:
                # No deadline: the stream lasts as long as the contents take to send.
                self._uploads.UploadBlobs(iter(stream), metadata=self._metadata)
            except grpc.RpcError as rpc_error:
                stream.check()
                raise SkyError.from_rpc_error(rpc_error) from None
            stream.check()
        created = self._unary(self._uploads.CreateTree, tree.create_request())
        return uploads.report(what, path, tree, created.reference, to_send, on_upload)

    # -- requests, infra, server --------------------------------------------

    def operation(self, name_or_id: str) -> "Operation":
        """A handle for an existing operation (``operations/<id>``, an id or a
        unique id prefix); raises SkyError (``error_reason``
        ``ErrorReason.ERROR_REASON_NOT_FOUND``) if there is none."""
        request = operations_pb2.GetOperationRequest(name=_common.operation_name(name_or_id))
        return Operation(self, self._unary(self._operations.GetOperation, request))

    def list_operations(
        self,
        *,
        all_users: bool = False,
        include_finished: bool = True,
        cluster_name: str = "",
        limit: int = 0,
    ) -> List["Operation"]:
        """`sky api status`: requests, newest first."""
        request = requests_pb2.ListRequestsRequest(
            all_users=all_users, include_finished=include_finished, cluster_name=cluster_name, limit=limit
        )
        response = self._unary(self._requests.ListRequests, request)
        return [Operation(self, operation) for operation in response.operations]

    def check(self, *, infras: Iterable[str] = (), idempotency_key: Optional[str] = None) -> "Operation":
        """`sky check` (CheckResponse)."""
        request = infra_pb2.CheckRequest(infras=list(infras), idempotency_key=_common.idempotency_key(idempotency_key))
        return self._submit(self._infra.Check, request)

    def ssh_up(self, *, infra: str = "", idempotency_key: Optional[str] = None) -> "Operation":
        """`sky ssh up`: reaches and prepares every host of the SSH node pool
        ``infra`` (``ssh/<pool>`` or ``<pool>``; empty for every pool), which
        then takes clusters (SshUpResponse)."""
        request = infra_pb2.SshUpRequest(infra=infra, idempotency_key=_common.idempotency_key(idempotency_key))
        return self._submit(self._infra.SshUp, request)

    def ssh_down(self, *, infra: str = "", idempotency_key: Optional[str] = None) -> "Operation":
        """`sky ssh down`: tears down the clusters on the SSH node pool ``infra``
        (``ssh/<pool>`` or ``<pool>``; empty for every pool) and forgets its
        hosts (SshDownResponse)."""
        request = infra_pb2.SshDownRequest(infra=infra, idempotency_key=_common.idempotency_key(idempotency_key))
        return self._submit(self._infra.SshDown, request)

    def server_info(self) -> server_pb2.GetServerInfoResponse:
        """Version, API version, mode and the calling user."""
        response = self._unary(self._server.GetServerInfo, server_pb2.GetServerInfoRequest())
        return cast(server_pb2.GetServerInfoResponse, response)

    def whoami(self) -> users_pb2.UserInfo:
        """The calling user with their role."""
        response = self._unary(self._users.WhoAmI, users_pb2.WhoAmIRequest())
        return cast(users_pb2.UserInfo, response.user)


class Operation:
    """A handle on a long-running request (``operations/<id>``)."""

    def __init__(self, client: Client, operation: Union[operations_pb2.Operation, str]) -> None:
        self._client = client
        if isinstance(operation, str):
            self.name = _common.operation_name(operation)
            self.last: Optional[operations_pb2.Operation] = None
        else:
            self.name = operation.name
            self.last = operation

    @property
    def id(self) -> str:
        return _common.operation_id(self.name)

    @property
    def metadata(self) -> Optional[requests_pb2.RequestMetadata]:
        """The RequestMetadata of the last snapshot (state, user, cluster, times ...)."""
        return None if self.last is None else _common.request_metadata(self.last)

    def __repr__(self) -> str:
        metadata = self.metadata
        state = requests_pb2.RequestState.Name(metadata.state) if metadata else "?"
        return f"Operation({self.name!r}, {state})"

    def refresh(self) -> operations_pb2.Operation:
        """The latest snapshot."""
        request = operations_pb2.GetOperationRequest(name=self.name)
        self.last = self._client._unary(self._client._operations.GetOperation, request)
        return self.last

    def done(self) -> bool:
        if self.last is not None and self.last.done:
            return True
        return bool(self.refresh().done)

    def wait(self, timeout: Optional[float] = None) -> operations_pb2.Operation:
        """Waits until the operation is done and returns it (failed ones too);
        raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.last is None or not self.last.done:
            remaining = _common.WAIT_SLICE_SECONDS
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
                if remaining <= 0:
                    if not self.refresh().done:
                        raise TimeoutError(f"operation {self.name} is not done after {timeout} s")
                    break
            request = operations_pb2.WaitOperationRequest(name=self.name, timeout=_common.duration(remaining))
            self.last = self._client._unary(
                self._client._operations.WaitOperation, request, timeout=remaining + self._client.timeout
            )
        return self.last

    def result(self, timeout: Optional[float] = None) -> Any:
        """Waits, then returns the unpacked response (e.g. LaunchResponse);
        raises SkyError for a failed or cancelled operation."""
        return _common.operation_result(self.wait(timeout))

    def watch(self) -> Iterator[operations_pb2.Operation]:
        """Snapshots: the current one, then every change, until done."""
        backoff = _common.Backoff(self._client.retry_unavailable_for)
        request = requests_pb2.WatchOperationRequest(name=self.name)
        while True:
            call = self._client._requests.WatchOperation(request, metadata=self._client._metadata)
            error: Optional[SkyError] = None
            try:
                for response in call:
                    backoff.reset()
                    self.last = response.operation
                    yield response.operation
                    if response.operation.done:
                        return
                if self.last is not None and self.last.done:
                    return
            except grpc.RpcError as rpc_error:
                error = SkyError.from_rpc_error(rpc_error)
            finally:
                call.cancel()
            if error is None:  # the stream ended early: read it again
                error = SkyError(grpc.StatusCode.UNAVAILABLE, "the watch stream ended early")
            pause = _common.retry_delay(error, backoff)
            if pause is None:
                raise error
            time.sleep(pause)

    def logs(self, follow: bool = True, offset: int = 0) -> "LogStream":
        """The operation's log as ``(offset, data)`` chunks; with ``follow``
        until the operation is done. Resumes from the last offset when the
        server becomes unavailable."""
        reading = {"follow": follow}

        def request(at: Optional[int]) -> requests_pb2.StreamLogsRequest:
            message = requests_pb2.StreamLogsRequest(name=self.name, follow=reading["follow"])
            if at is not None:
                message.offset = at
            return message

        def ended(stream: LogStream) -> str:
            if not reading["follow"]:
                return _common.LOG_DONE
            if self.refresh().done:  # a last read picks up what the follow may have missed
                reading["follow"] = False
                return _common.LOG_REOPEN
            return _common.LOG_INTERRUPTED  # the log ended before the operation: resume

        return LogStream(self._client, self._client._requests.StreamLogs, request, offset, ended)

    def cancel(self) -> None:
        """Asks the server to cancel the operation; raises SkyError (``error_reason``
        ``ErrorReason.ERROR_REASON_ALREADY_DONE``) when it has already finished."""
        request = operations_pb2.CancelOperationRequest(name=self.name)
        self._client._unary(self._client._operations.CancelOperation, request)


class LogStream(Iterator[Chunk]):
    """An iterator of ``(offset, data)`` log chunks that resumes from the next
    offset after a server outage (UNAVAILABLE, or a follow that ended before
    the job or operation did), for up to the client's
    ``retry_unavailable_for`` per outage.

    ``offset`` is the next byte to read; ``job`` is the job state sent with the
    last message of a job log stream (a Job, or a ManagedJob for `jobs_logs`).
    ``close()`` stops it early. With a ``deadline`` (a `time.monotonic()`
    value) it raises TimeoutError once that passes.
    """

    def __init__(
        self,
        client: Client,
        method: Callable[..., Any],
        make_request: Callable[[Optional[int]], Any],
        offset: Optional[int],
        ended: Callable[["LogStream"], str],
        *,
        deadline: Optional[float] = None,
    ) -> None:
        self._client = client
        self._method = method
        self._make_request = make_request
        self._ended = ended
        self._deadline = deadline
        self.offset = offset
        self.job: Any = None
        self._call: Any = None
        self._closed = False
        self._lock = threading.Lock()
        self._chunks = self._run()

    def __iter__(self) -> "LogStream":
        return self

    def __next__(self) -> Chunk:
        return next(self._chunks)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._call is not None:
                self._call.cancel()
        try:
            self._chunks.close()
        except ValueError:  # being iterated in another thread: the cancel ends it
            pass

    def __enter__(self) -> "LogStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def text(self, encoding: str = "utf-8") -> str:
        """Reads the rest of the stream and returns it decoded."""
        return b"".join(data for _, data in self).decode(encoding, errors="replace")

    def _run(self) -> Generator[Chunk, None, None]:
        backoff = _common.Backoff(self._client.retry_unavailable_for)
        while True:
            remaining = self._remaining()
            with self._lock:
                if self._closed:
                    return
                request = self._make_request(self.offset)
                call = self._method(request, metadata=self._client._metadata, timeout=remaining)
                self._call = call
            error: Optional[SkyError] = None
            try:
                for response in call:
                    backoff.reset()
                    job = getattr(response, "job", None)
                    if job is not None and response.HasField("job"):
                        self.job = job
                    if response.data:
                        self.offset = response.offset + len(response.data)
                        yield response.offset, response.data
            except grpc.RpcError as rpc_error:
                if self._closed:
                    return
                error = SkyError.from_rpc_error(rpc_error)
            finally:
                call.cancel()
            if error is None:
                outcome = self._ended(self)
                if outcome == _common.LOG_DONE:
                    return
                if outcome == _common.LOG_REOPEN:
                    continue
                error = SkyError(grpc.StatusCode.UNAVAILABLE, "the log stream ended early: the server went away")
            self._remaining()  # past the deadline: TimeoutError rather than the call's DEADLINE_EXCEEDED
            pause = _common.retry_delay(error, backoff)
            if pause is None:
                raise error
            remaining = self._remaining()
            time.sleep(pause if remaining is None else min(pause, remaining))

    def _remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None: no deadline); TimeoutError once it passed."""
        if self._deadline is None:
            return None
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the log stream did not end before the deadline")
        return remaining


class _StubProxy:
    """Wraps a generated stub: unary methods get the client's headers,
    deadline, retry and SkyError mapping; streaming ones its headers."""

    def __init__(self, client: Client, stub: Any) -> None:
        self._client = client
        self._stub = stub

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        client = self._client
        if isinstance(method, grpc.UnaryUnaryMultiCallable):

            def unary(request: Any, *, timeout: Optional[float] = None) -> Any:
                return client._unary(method, request, timeout=timeout)

            return unary
        if isinstance(method, grpc.UnaryStreamMultiCallable):

            def stream(request: Any) -> Iterator[Any]:
                call = method(request, metadata=client._metadata)
                try:
                    yield from call
                except grpc.RpcError as rpc_error:
                    raise SkyError.from_rpc_error(rpc_error) from None
                finally:
                    call.cancel()

            return stream
        return method
