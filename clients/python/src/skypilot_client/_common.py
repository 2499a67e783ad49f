"""What the sync and asyncio clients share: names, retry pacing, the
Operations stub, message lookup and channel settings."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple, Type

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2, message

from ._gen.skypilot.v1 import (
    clusters_pb2,
    infra_pb2,
    managed_jobs_pb2,
    requests_pb2,
    server_pb2,
    uploads_pb2,
    users_pb2,
)
from ._version import __version__
from .endpoint import Connection
from .errors import SkyError

#: Largest response message accepted (log chunks are far smaller).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Longest single WaitOperation call; `wait()` loops over these.
WAIT_SLICE_SECONDS = 60.0
#: First and longest pause between retries of an unavailable server.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 2.0

OPERATION_PREFIX = "operations/"

#: Managed job statuses after which a job never changes again.
FINAL_MANAGED_JOB_STATUSES = frozenset(
    {
        managed_jobs_pb2.MANAGED_JOB_STATUS_SUCCEEDED,
        managed_jobs_pb2.MANAGED_JOB_STATUS_FAILED,
        managed_jobs_pb2.MANAGED_JOB_STATUS_FAILED_SETUP,
        managed_jobs_pb2.MANAGED_JOB_STATUS_FAILED_NO_RESOURCE,
        managed_jobs_pb2.MANAGED_JOB_STATUS_FAILED_CONTROLLER,
        managed_jobs_pb2.MANAGED_JOB_STATUS_CANCELLED,
    }
)
#: Managed jobs asked for per ListManagedJobs call.
MANAGED_JOBS_PAGE_SIZE = 500

# What a log stream that ended without an error means (see LogStream):
#: the log is complete;
LOG_DONE = "done"
#: read once more at once (a last read without follow, from the offset);
LOG_REOPEN = "reopen"
#: the server went away mid-stream (a shutdown ends streams cleanly): resume
#: from the offset after a pause, as after UNAVAILABLE.
LOG_INTERRUPTED = "interrupted"


def operation_name(name_or_id: str) -> str:
    """``operations/<id>`` for an id, a unique id prefix or a full name."""
    name_or_id = name_or_id.strip()
    if not name_or_id:
        raise ValueError("an operation name or id is required")
    return name_or_id if name_or_id.startswith(OPERATION_PREFIX) else OPERATION_PREFIX + name_or_id


def operation_id(name: str) -> str:
    return name[len(OPERATION_PREFIX) :] if name.startswith(OPERATION_PREFIX) else name


def idempotency_key(key: Optional[str]) -> str:
    """The caller's key, or a fresh one: a retry after a lost reply then
    returns the operation already submitted instead of submitting it twice."""
    return key if key else str(uuid.uuid4())


def managed_job_request(
    job_id: int, name: str, follow: bool, controller: bool, at: Optional[int], tail_lines: Optional[int]
) -> managed_jobs_pb2.TailManagedJobLogsRequest:
    """A TailManagedJobLogs request from ``at`` (else the last ``tail_lines`` lines)."""
    message = managed_jobs_pb2.TailManagedJobLogsRequest(
        job_id=job_id, name=name, follow=follow, controller=controller
    )
    if at is not None:
        message.offset = at
    elif tail_lines is not None:
        message.tail_lines = tail_lines
    return message


def managed_jobs_page(
    all_users: bool, skip_finished: bool, job_ids: List[int], limit: int, have: int, token: str
) -> Optional[managed_jobs_pb2.ListManagedJobsRequest]:
    """The next ListManagedJobs request of a listing of at most ``limit``
    jobs (0: all) that has ``have`` of them; None when it is complete."""
    if limit and have >= limit:
        return None
    size = MANAGED_JOBS_PAGE_SIZE if not limit else min(MANAGED_JOBS_PAGE_SIZE, limit - have)
    return managed_jobs_pb2.ListManagedJobsRequest(
        all_users=all_users, skip_finished=skip_finished, job_ids=job_ids, page_size=size, page_token=token
    )


def check_job_id(job_id: int) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise ValueError(f"a managed job id (1 or more) is required, not {job_id!r}")
    return job_id


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return value


class Backoff:
    """Exponential backoff with jitter, bounded by a total budget in seconds,
    counted from the first failure since the last `reset`."""

    def __init__(self, budget: float, first: float = FIRST_RETRY_DELAY, cap: float = MAX_RETRY_DELAY) -> None:
        self.budget = budget
        self.first = first
        self.cap = cap
        self._started: Optional[float] = None
        self._attempt = 0

    def reset(self) -> None:
        self._started = None
        self._attempt = 0

    def delay(self, hint: Optional[float] = None) -> Optional[float]:
        """Seconds to wait before the next try, or None when the budget is spent.
        ``hint`` is the server's RetryInfo delay (honoured up to the cap)."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        remaining = self.budget - (now - self._started)
        if remaining <= 0:
            return None
        pause: float = min(self.cap, self.first * (2**self._attempt)) * random.uniform(0.5, 1.0)
        self._attempt += 1
        if hint:
            pause = max(pause, min(hint, self.cap))
        return min(pause, remaining)


def retry_delay(error: SkyError, backoff: Backoff) -> Optional[float]:
    """How long to wait before retrying after `error`; None: do not retry.
    Only UNAVAILABLE is retried."""
    if error.code != grpc.StatusCode.UNAVAILABLE:
        return None
    return backoff.delay(error.retry_delay)


class OperationsStub:
    """Client stub of google.longrunning.Operations (sync or asyncio channel)."""

    def __init__(self, channel: Any) -> None:
        def method(name: str, request: Type[message.Message], response: Type[message.Message]) -> Any:
            return channel.unary_unary(
                f"/google.longrunning.Operations/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        self.ListOperations = method(
            "ListOperations", operations_pb2.ListOperationsRequest, operations_pb2.ListOperationsResponse
        )
        self.GetOperation = method("GetOperation", operations_pb2.GetOperationRequest, operations_pb2.Operation)
        self.DeleteOperation = method("DeleteOperation", operations_pb2.DeleteOperationRequest, empty_pb2.Empty)
        self.CancelOperation = method("CancelOperation", operations_pb2.CancelOperationRequest, empty_pb2.Empty)
        self.WaitOperation = method("WaitOperation", operations_pb2.WaitOperationRequest, operations_pb2.Operation)


def _message_classes() -> Dict[str, Type[message.Message]]:
    classes: Dict[str, Type[message.Message]] = {"google.protobuf.Empty": empty_pb2.Empty}
    for module in (clusters_pb2, infra_pb2, managed_jobs_pb2, requests_pb2, server_pb2, uploads_pb2, users_pb2):
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            classes[descriptor.full_name] = getattr(module, name)
    return classes


MESSAGE_CLASSES = _message_classes()


def unpack(value: any_pb2.Any) -> message.Message:
    """The message packed in an Any (the Any itself when its type is unknown)."""
    cls = MESSAGE_CLASSES.get(value.type_url.rsplit("/", 1)[-1])
    if cls is None:
        return value
    unpacked = cls()
    value.Unpack(unpacked)
    return unpacked


def request_metadata(operation: operations_pb2.Operation) -> Optional[requests_pb2.RequestMetadata]:
    """The RequestMetadata packed in an operation, if any."""
    if not operation.HasField("metadata"):
        return None
    metadata = requests_pb2.RequestMetadata()
    if not operation.metadata.Unpack(metadata):
        return None
    return metadata


def operation_error(operation: operations_pb2.Operation) -> Optional[SkyError]:
    """The SkyError of a failed or cancelled operation, None otherwise."""
    if operation.WhichOneof("result") != "error":
        return None
    error = SkyError.from_status(operation.error, operation=operation.name)
    metadata = request_metadata(operation)
    if metadata is not None and metadata.retryable:
        error.retryable = True
    return error


def operation_result(operation: operations_pb2.Operation) -> Any:
    """The unpacked response of a finished operation; raises its SkyError."""
    error = operation_error(operation)
    if error is not None:
        raise error
    if operation.WhichOneof("result") == "response":
        return unpack(operation.response)
    return None


def channel_options(extra: Optional[List[Tuple[str, Any]]] = None) -> List[Tuple[str, Any]]:
    options: List[Tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", f"skypilot-api-client-python/{__version__}"),
        # Reconnect as briskly as calls are retried (gRPC's default backoff grows
        # to 120 s), so that a restarted server is found again at once.
        ("grpc.initial_reconnect_backoff_ms", int(FIRST_RETRY_DELAY * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(FIRST_RETRY_DELAY * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(MAX_RETRY_DELAY * 1000)),
    ]
    return options + list(extra or [])


def channel_credentials(connection: Connection) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials for ``https://`` endpoints, None for plaintext."""
    if not connection.endpoint.tls:
        return None
    return grpc.ssl_channel_credentials(root_certificates=connection.root_certificates())
