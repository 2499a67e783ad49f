"""The asyncio client (`grpc.aio`): `AsyncClient`, `AsyncOperation` and
`AsyncLogStream`, with the same methods as the sync client as coroutines and
async iterators."""

from __future__ import annotations

import asyncio
import os
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    cast,
)

import grpc
import grpc.aio
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

Chunk = Tuple[int, bytes]


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.clusters = clusters_pb2_grpc.ClusterServiceStub(channel)
        self.jobs = clusters_pb2_grpc.JobServiceStub(channel)
        self.requests = requests_pb2_grpc.RequestServiceStub(channel)
        self.server = server_pb2_grpc.ServerServiceStub(channel)
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.infra = infra_pb2_grpc.InfraServiceStub(channel)
        self.uploads = uploads_pb2_grpc.UploadServiceStub(channel)
        self.managed_jobs = managed_jobs_pb2_grpc.ManagedJobServiceStub(channel)
        self.operations = _common.OperationsStub(channel)


class AsyncClient:
    """The asyncio twin of `skypilot_client.Client`: same arguments, same
    endpoint and credential resolution, deadlines, retries and errors.

    The channel opens on first use in the running event loop (and again if
    the client is later used from another loop). Use ``async with`` or
    ``await client.close()``.
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
        self._options = _common.channel_options(list(channel_options or []))
        self._credentials = _common.channel_credentials(self._connection)
        self._stubs_: Optional[_Stubs] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # -- connection ---------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The server's URL, the password masked."""
        return self._connection.endpoint.display()

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """Headers sent with every call: API version and credentials."""
        return self._metadata

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel of the running event loop, for stubs of your own."""
        return self._stubs().channel

    def _stubs(self) -> _Stubs:
        loop = asyncio.get_running_loop()
        if self._stubs_ is None or self._loop is not loop:
            target = self._connection.endpoint.target
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(target, options=self._options)
            else:
                channel = grpc.aio.secure_channel(target, self._credentials, options=self._options)
            self._stubs_, self._loop = _Stubs(channel), loop
        return self._stubs_

    async def close(self) -> None:
        stubs, self._stubs_ = self._stubs_, None
        if stubs is not None and self._loop is asyncio.get_running_loop():
            await stubs.channel.close(grace=None)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.endpoint!r})"

    def stub(self, stub_class: Callable[[grpc.aio.Channel], Any]) -> Any:
        """A generated stub whose unary methods add this client's headers,
        deadline, retry and SkyError mapping (coroutines)."""
        return _AsyncStubProxy(self, stub_class)

    async def _unary(
        self, pick: Callable[[_Stubs], Callable[..., Awaitable[Any]]], request: Any, *, timeout: Optional[float] = None
    ) -> Any:
        backoff = _common.Backoff(self.retry_unavailable_for)
        while True:
            method = pick(self._stubs())
            try:
                return await method(
                    request,
                    timeout=self.timeout if timeout is None else timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as rpc_error:
                error = SkyError.from_rpc_error(rpc_error)
            pause = _common.retry_delay(error, backoff)
            if pause is None:
                raise error
            await asyncio.sleep(pause)

    async def _submit(self, pick: Callable[[_Stubs], Any], request: Any) -> "AsyncOperation":
        return AsyncOperation(self, await self._unary(pick, request))

    # -- clusters -----------------------------------------------------------

    async def launch(
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
    ) -> "AsyncOperation":
        """`sky launch` (LaunchResponse); uploads the task's local sources first
        when the server runs elsewhere; see `Client.launch`."""
        request = clusters_pb2.LaunchRequest(
            task=await self._task_spec(task, on_upload),
            cluster_name=cluster_name,
            no_setup=no_setup,
            down=down,
            dryrun=dryrun,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        if idle_minutes_to_autostop is not None:
            request.idle_minutes_to_autostop = idle_minutes_to_autostop
        return await self._submit(lambda s: s.clusters.Launch, request)

    async def exec(
        self,
        cluster_name: str,
        task: Union[Task, PathLike],
        *,
        idempotency_key: Optional[str] = None,
        on_upload: Optional[OnUpload] = None,
    ) -> "AsyncOperation":
        """`sky exec` (ExecResponse); uploads as `launch` does."""
        request = clusters_pb2.ExecRequest(
            cluster_name=cluster_name,
            task=await self._task_spec(task, on_upload),
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return await self._submit(lambda s: s.clusters.Exec, request)

    async def _task_spec(self, task: Union[Task, PathLike], on_upload: Optional[OnUpload]) -> clusters_pb2.TaskSpec:
        """The task to send: its local sources uploaded when the server cannot read them."""
        return (await self._task_specs([Task.coerce(task).to_proto()], on_upload))[0]

    async def _task_specs(
        self, specs: List[clusters_pb2.TaskSpec], on_upload: Optional[OnUpload]
    ) -> List[clusters_pb2.TaskSpec]:
        """The tasks to send, each with its local sources uploaded when the server cannot read them."""
        if not any(uploads.sources(spec) for spec in specs):
            return specs
        info = await self.server_info()
        if not uploads.runs_elsewhere(info, self._connection.endpoint.host):
            return specs
        limit = uploads.upload_limit(info)
        for spec in specs:
            for what, path, dest in uploads.sources(spec):
                uploads.replace_source(spec, dest, (await self._upload(what, path, limit, on_upload)).reference)
        return specs

    async def _cluster_action(
        self, action: str, cluster_name: str, key: Optional[str], *, purge: bool = False
    ) -> "AsyncOperation":
        request = clusters_pb2.ClusterActionRequest(
            cluster_name=cluster_name, purge=purge, idempotency_key=_common.idempotency_key(key)
        )
        return await self._submit(lambda s: getattr(s.clusters, action), request)

    async def stop(self, cluster_name: str, *, idempotency_key: Optional[str] = None) -> "AsyncOperation":
        """`sky stop` (ClusterActionResponse)."""
        return await self._cluster_action("Stop", cluster_name, idempotency_key)

    async def start(self, cluster_name: str, *, idempotency_key: Optional[str] = None) -> "AsyncOperation":
        """`sky start` (ClusterActionResponse)."""
        return await self._cluster_action("Start", cluster_name, idempotency_key)

    async def down(
        self, cluster_name: str, *, purge: bool = False, idempotency_key: Optional[str] = None
    ) -> "AsyncOperation":
        """`sky down` (``purge``: `sky down --purge`); see `Client.down`."""
        return await self._cluster_action("Down", cluster_name, idempotency_key, purge=purge)

    async def autostop(
        self,
        cluster_name: str,
        idle_minutes: int = 5,
        *,
        down: bool = False,
        cancel: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "AsyncOperation":
        """`sky autostop` (ClusterActionResponse)."""
        request = clusters_pb2.AutostopRequest(
            cluster_name=cluster_name,
            idle_minutes=idle_minutes,
            down=down,
            cancel=cancel,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return await self._submit(lambda s: s.clusters.Autostop, request)

    async def status(
        self, cluster_names: Iterable[str] = (), all_users: bool = False, *, refresh: bool = False
    ) -> List[clusters_pb2.Cluster]:
        """`sky status` (``refresh``: `sky status -r`); see `Client.status`."""
        request = clusters_pb2.ListClustersRequest(
            cluster_names=list(cluster_names), all_users=all_users, refresh=refresh
        )
        return list((await self._unary(lambda s: s.clusters.ListClusters, request)).clusters)

    # -- jobs ---------------------------------------------------------------

    async def queue(
        self, cluster_name: str, skip_finished: bool = False, all_users: bool = False
    ) -> List[clusters_pb2.Job]:
        """`sky queue`."""
        request = clusters_pb2.ListJobsRequest(
            cluster_name=cluster_name, skip_finished=skip_finished, all_users=all_users
        )
        return list((await self._unary(lambda s: s.jobs.ListJobs, request)).jobs)

    async def cancel_jobs(
        self,
        cluster_name: str,
        job_ids: Iterable[int] = (),
        *,
        all: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "AsyncOperation":
        """`sky cancel` (CancelJobsResponse)."""
        request = clusters_pb2.CancelJobsRequest(
            cluster_name=cluster_name,
            job_ids=list(job_ids),
            all=all,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return await self._submit(lambda s: s.jobs.CancelJobs, request)

    def job_logs(
        self,
        cluster_name: str,
        job_id: int = 0,
        *,
        follow: bool = True,
        offset: Optional[int] = None,
        tail_lines: Optional[int] = None,
    ) -> "AsyncLogStream":
        """`sky logs` as an async iterator of ``(offset, data)``; see `Client.job_logs`."""

        def request(at: Optional[int]) -> clusters_pb2.TailJobLogsRequest:
            message = clusters_pb2.TailJobLogsRequest(cluster_name=cluster_name, job_id=job_id, follow=follow)
            if at is not None:
                message.offset = at
            elif tail_lines is not None:
                message.tail_lines = tail_lines
            return message

        async def ended(stream: AsyncLogStream) -> str:
            # A followed job log ends with the job's final state; without it,
            # the server went away (a restart) and the stream resumes.
            return _common.LOG_DONE if not follow or stream.job is not None else _common.LOG_INTERRUPTED

        return AsyncLogStream(self, lambda s: s.jobs.TailJobLogs, request, offset, ended)

    # -- managed jobs -------------------------------------------------------

    async def jobs_launch(
        self,
        tasks: PipelineLike,
        *,
        name: str = "",
        idempotency_key: Optional[str] = None,
        on_upload: Optional[OnUpload] = None,
    ) -> "AsyncOperation":
        """`sky jobs launch` (LaunchManagedJobResponse); uploads as `launch`
        does; see `Client.jobs_launch`."""
        pipeline = Pipeline.coerce(tasks)
        request = managed_jobs_pb2.LaunchManagedJobRequest(
            tasks=await self._task_specs(pipeline.to_proto(), on_upload),
            name=name or pipeline.name,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return await self._submit(lambda s: s.managed_jobs.LaunchManagedJob, request)

    async def jobs_queue(
        self,
        *,
        all_users: bool = False,
        skip_finished: bool = False,
        job_ids: Iterable[int] = (),
        limit: int = 0,
    ) -> List[managed_jobs_pb2.ManagedJob]:
        """`sky jobs queue`: managed jobs, newest first; see `Client.jobs_queue`."""
        ids: List[int] = list(job_ids)
        jobs: List[managed_jobs_pb2.ManagedJob] = []
        token = ""
        while True:
            request = _common.managed_jobs_page(all_users, skip_finished, ids, limit, len(jobs), token)
            if request is None:
                return jobs
            page = await self._unary(lambda s: s.managed_jobs.ListManagedJobs, request)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    async def jobs_cancel(
        self,
        job_ids: Iterable[int] = (),
        *,
        name: str = "",
        all: bool = False,
        all_users: bool = False,
        idempotency_key: Optional[str] = None,
    ) -> "AsyncOperation":
        """`sky jobs cancel` (CancelManagedJobsResponse); see `Client.jobs_cancel`."""
        request = managed_jobs_pb2.CancelManagedJobsRequest(
            job_ids=list(job_ids),
            name=name,
            all=all,
            all_users=all_users,
            idempotency_key=_common.idempotency_key(idempotency_key),
        )
        return await self._submit(lambda s: s.managed_jobs.CancelManagedJobs, request)

    def jobs_logs(
        self,
        job_id: int = 0,
        *,
        name: str = "",
        follow: bool = True,
        controller: bool = False,
        offset: Optional[int] = None,
        tail_lines: Optional[int] = None,
    ) -> "AsyncLogStream":
        """`sky jobs logs` as an async iterator of ``(offset, data)``; see `Client.jobs_logs`."""
        return self._managed_logs(job_id, name, follow, controller, offset, tail_lines, None)

    async def jobs_wait(self, job_id: int, timeout: Optional[float] = None) -> managed_jobs_pb2.ManagedJob:
        """Waits until the managed job is over and returns it; see `Client.jobs_wait`."""
        _common.check_job_id(job_id)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        # The controller's log, from its end: short, and it ends with the job.
        async with self._managed_logs(job_id, "", True, True, None, 0, deadline) as stream:
            try:
                async for _ in stream:
                    pass
            except TimeoutError:
                raise TimeoutError(f"managed job {job_id} is not over after {timeout} s") from None
        job = cast(Optional[managed_jobs_pb2.ManagedJob], stream.job)
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
    ) -> "AsyncLogStream":
        def request(at: Optional[int]) -> managed_jobs_pb2.TailManagedJobLogsRequest:
            return _common.managed_job_request(job_id, name, follow, controller, at, tail_lines)

        async def ended(stream: AsyncLogStream) -> str:
            # A followed log ends with the job's final state; without it, the
            # server went away (a restart) and the stream resumes.
            return _common.LOG_DONE if not follow or stream.job is not None else _common.LOG_INTERRUPTED

        return AsyncLogStream(
            self, lambda s: s.managed_jobs.TailManagedJobLogs, request, offset, ended, deadline=deadline
        )

    # -- uploads ------------------------------------------------------------

    async def upload(self, path: PathLike, *, on_upload: Optional[OnUpload] = None) -> str:
        """Uploads a folder or a file and returns its reference; see `Client.upload`.
        Listing and hashing run in a worker thread."""
        path = os.fspath(path)
        return (await self._upload("", path, uploads.upload_limit(await self.server_info()), on_upload)).reference

    async def _upload(self, what: str, path: str, limit: Optional[int], on_upload: Optional[OnUpload]) -> Uploaded:
        tree = await asyncio.to_thread(uploads.scan, path, limit)
        missing: Set[str] = set()
        for batch in uploads.digest_batches(tree.digests()):
            request = uploads_pb2.FindMissingBlobsRequest(digests=batch)
            missing.update((await self._unary(lambda s: s.uploads.FindMissingBlobs, request)).missing)
        to_send = tree.to_send(missing)
        if to_send:
            await self._upload_blobs(uploads.BlobStream(to_send))
        created = await self._unary(lambda s: s.uploads.CreateTree, tree.create_request())
        return uploads.report(what, path, tree, created.reference, to_send, on_upload)

    async def _upload_blobs(self, stream: uploads.BlobStream) -> None:
        """Streams the contents over a synchronous channel of its own, whose
        thread reads the files: when the server ends a client stream early
        (e.g. a content over the user's quota), grpc.aio may report INTERNAL
        instead of the server's status (grpc/grpc#36066); the synchronous
        API reports the server's."""
        target = self._connection.endpoint.target
        if self._credentials is None:
            channel = grpc.insecure_channel(target, options=self._options)
        else:
            channel = grpc.secure_channel(target, self._credentials, options=self._options)
        try:
            stub = uploads_pb2_grpc.UploadServiceStub(channel)
            # No deadline: the stream lasts as long as the contents take to send.
            call = stub.UploadBlobs.future(iter(stream), metadata=self._metadata)
            loop = asyncio.get_running_loop()
            finished: "asyncio.Future[None]" = loop.create_future()

            def settle() -> None:
                if not finished.done():
                    finished.set_result(None)

            # Runs in gRPC's thread (or at once when the call is already done).
            call.add_done_callback(lambda _: loop.call_soon_threadsafe(settle))
            try:
                await finished
            except asyncio.CancelledError:
                call.cancel()
                raise
            try:
                call.result()
            except grpc.RpcError as rpc_error:
                stream.check()
                raise SkyError.from_rpc_error(rpc_error) from None
            stream.check()
        finally:
            channel.close()

    # -- requests, infra, server --------------------------------------------

    async def operation(self, name_or_id: str) -> "AsyncOperation":
        """A handle for an existing operation; raises SkyError
        (``ErrorReason.ERROR_REASON_NOT_FOUND``) if there is none."""
        request = operations_pb2.GetOperationRequest(name=_common.operation_name(name_or_id))
        return AsyncOperation(self, await self._unary(lambda s: s.operations.GetOperation, request))

    async def list_operations(
        self,
        *,
        all_users: bool = False,
        include_finished: bool = True,
        cluster_name: str = "",
        limit: int = 0,
    ) -> List["AsyncOperation"]:
        """`sky api status`: requests, newest first."""
        request = requests_pb2.ListRequestsRequest(
            all_users=all_users, include_finished=include_finished, cluster_name=cluster_name, limit=limit
        )
        response = await self._unary(lambda s: s.requests.ListRequests, request)
        return [AsyncOperation(self, operation) for operation in response.operations]

    async def check(self, *, infras: Iterable[str] = (), idempotency_key: Optional[str] = None) -> "AsyncOperation":
        """`sky check` (CheckResponse)."""
        request = infra_pb2.CheckRequest(infras=list(infras), idempotency_key=_common.idempotency_key(idempotency_key))
        return await self._submit(lambda s: s.infra.Check, request)

    async def ssh_up(self, *, infra: str = "", idempotency_key: Optional[str] = None) -> "AsyncOperation":
        """`sky ssh up` (SshUpResponse); see `Client.ssh_up`."""
        request = infra_pb2.SshUpRequest(infra=infra, idempotency_key=_common.idempotency_key(idempotency_key))
        return await self._submit(lambda s: s.infra.SshUp, request)

    async def ssh_down(self, *, infra: str = "", idempotency_key: Optional[str] = None) -> "AsyncOperation":
        """`sky ssh down` (SshDownResponse); see `Client.ssh_down`."""
        request = infra_pb2.SshDownRequest(infra=infra, idempotency_key=_common.idempotency_key(idempotency_key))
        return await self._submit(lambda s: s.infra.SshDown, request)

    async def server_info(self) -> server_pb2.GetServerInfoResponse:
        response = await self._unary(lambda s: s.server.GetServerInfo, server_pb2.GetServerInfoRequest())
        return cast(server_pb2.GetServerInfoResponse, response)

    async def whoami(self) -> users_pb2.UserInfo:
        response = await self._unary(lambda s: s.users.WhoAmI, users_pb2.WhoAmIRequest())
        return cast(users_pb2.UserInfo, response.user)


class AsyncOperation:
    """The asyncio twin of `skypilot_client.Operation`."""

    def __init__(self, client: AsyncClient, operation: Union[operations_pb2.Operation, str]) -> None:
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
        """The RequestMetadata of the last snapshot."""
        return None if self.last is None else _common.request_metadata(self.last)

    def __repr__(self) -> str:
        metadata = self.metadata
        state = requests_pb2.RequestState.Name(metadata.state) if metadata else "?"
        return f"AsyncOperation({self.name!r}, {state})"

    async def refresh(self) -> operations_pb2.Operation:
        request = operations_pb2.GetOperationRequest(name=self.name)
        self.last = await self._client._unary(lambda s: s.operations.GetOperation, request)
        return self.last

    async def done(self) -> bool:
        if self.last is not None and self.last.done:
            return True
        return bool((await self.refresh()).done)

    async def wait(self, timeout: Optional[float] = None) -> operations_pb2.Operation:
        """Waits until done and returns the operation; TimeoutError after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.last is None or not self.last.done:
            remaining = _common.WAIT_SLICE_SECONDS
            if deadline is not None:
                remaining = min(remaining, deadline - loop.time())
                if remaining <= 0:
                    if not (await self.refresh()).done:
                        raise TimeoutError(f"operation {self.name} is not done after {timeout} s")
                    break
            request = operations_pb2.WaitOperationRequest(name=self.name, timeout=_common.duration(remaining))
            self.last = await self._client._unary(
                lambda s: s.operations.WaitOperation, request, timeout=remaining + self._client.timeout
            )
        return self.last

    async def result(self, timeout: Optional[float] = None) -> Any:
        """The unpacked response; raises SkyError for a failed or cancelled operation."""
        return _common.operation_result(await self.wait(timeout))

    async def watch(self) -> AsyncIterator[operations_pb2.Operation]:
        """Snapshots until done."""
        backoff = _common.Backoff(self._client.retry_unavailable_for)
        request = requests_pb2.WatchOperationRequest(name=self.name)
        while True:
            call = self._client._stubs().requests.WatchOperation(request, metadata=self._client._metadata)
            error: Optional[SkyError] = None
            try:
                async for response in call:
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
            if error is None:
                error = SkyError(grpc.StatusCode.UNAVAILABLE, "the watch stream ended early")
            pause = _common.retry_delay(error, backoff)
            if pause is None:
                raise error
            await asyncio.sleep(pause)

    def logs(self, follow: bool = True, offset: int = 0) -> "AsyncLogStream":
        """The operation's log as an async iterator of ``(offset, data)``."""

        reading = {"follow": follow}

        def request(at: Optional[int]) -> requests_pb2.StreamLogsRequest:
            message = requests_pb2.StreamLogsRequest(name=self.name, follow=reading["follow"])
            if at is not None:
                message.offset = at
            return message

        async def ended(stream: AsyncLogStream) -> str:
            if not reading["follow"]:
                return _common.LOG_DONE
            if (await self.refresh()).done:  # a last read picks up what the follow may have missed
                reading["follow"] = False
                return _common.LOG_REOPEN
            return _common.LOG_INTERRUPTED  # the log ended before the operation: resume

        return AsyncLogStream(self._client, lambda s: s.requests.StreamLogs, request, offset, ended)

    async def cancel(self) -> None:
        """Asks the server to cancel; raises SkyError
        (``ErrorReason.ERROR_REASON_ALREADY_DONE``) when it has already finished."""
        request = operations_pb2.CancelOperationRequest(name=self.name)
        await self._client._unary(lambda s: s.operations.CancelOperation, request)


class AsyncLogStream(AsyncIterator[Chunk]):
    """Async iterator of ``(offset, data)`` chunks that resumes from the next
    offset after a server outage; ``offset``, ``job``, ``aclose()`` and
    ``deadline`` (an event-loop time) as in `skypilot_client.LogStream`."""

    def __init__(
        self,
        client: AsyncClient,
        pick: Callable[[_Stubs], Callable[..., Any]],
        make_request: Callable[[Optional[int]], Any],
        offset: Optional[int],
        ended: Callable[["AsyncLogStream"], Awaitable[str]],
        *,
        deadline: Optional[float] = None,
    ) -> None:
        self._client = client
        self._pick = pick
        self._make_request = make_request
        self._ended = ended
        self._deadline = deadline
        self.offset = offset
        self.job: Any = None
        self._call: Any = None
        self._closed = False
        self._chunks = self._run()

    def __aiter__(self) -> "AsyncLogStream":
        return self

    async def __anext__(self) -> Chunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        await self._chunks.aclose()

    async def __aenter__(self) -> "AsyncLogStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def text(self, encoding: str = "utf-8") -> str:
        """Reads the rest of the stream and returns it decoded."""
        parts = [data async for _, data in self]
        return b"".join(parts).decode(encoding, errors="replace")

    async def _run(self) -> AsyncGenerator[Chunk, None]:
        backoff = _common.Backoff(self._client.retry_unavailable_for)
        while not self._closed:
            method = self._pick(self._client._stubs())
            remaining = self._remaining()
            call = method(self._make_request(self.offset), metadata=self._client._metadata, timeout=remaining)
            self._call = call
            error: Optional[SkyError] = None
            try:
                async for response in call:
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
                outcome = await self._ended(self)
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
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))

    def _remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None: no deadline); TimeoutError once it passed."""
        if self._deadline is None:
            return None
        remaining = self._deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError("the log stream did not end before the deadline")
        return remaining


class _AsyncStubProxy:
    def __init__(self, client: AsyncClient, stub_class: Callable[[grpc.aio.Channel], Any]) -> None:
        self._client = client
        self._stub_class = stub_class

    def __getattr__(self, name: str) -> Any:
        client = self._client
        stub_class = self._stub_class

        def pick(stubs: _Stubs) -> Any:
            return getattr(stub_class(stubs.channel), name)

        async def unary(request: Any, *, timeout: Optional[float] = None) -> Any:
            return await client._unary(pick, request, timeout=timeout)

        async def stream(request: Any) -> AsyncIterator[Any]:
            call = pick(client._stubs())(request, metadata=client._metadata)
            try:
                async for response in call:
                    yield response
            except grpc.RpcError as rpc_error:
                raise SkyError.from_rpc_error(rpc_error) from None
            finally:
                call.cancel()

        method = getattr(stub_class(cast(grpc.aio.Channel, _PROBE)), name)
        return stream if method == "unary_stream" else unary


class _Probe:
    """A fake channel telling a stub's unary methods from its streaming ones."""

    def unary_unary(self, *args: Any, **kwargs: Any) -> str:
        return "unary_unary"

    def unary_stream(self, *args: Any, **kwargs: Any) -> str:
        return "unary_stream"

    def stream_unary(self, *args: Any, **kwargs: Any) -> str:
        return "stream_unary"

    def stream_stream(self, *args: Any, **kwargs: Any) -> str:
        return "stream_stream"


_PROBE = _Probe()
