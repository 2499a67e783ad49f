from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from skypilot_client._gen.skypilot.v1 import clusters_pb2 as _clusters_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ManagedJobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MANAGED_JOB_STATUS_UNSPECIFIED: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_PENDING: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_STARTING: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_RUNNING: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_RECOVERING: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_SUCCEEDED: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_FAILED: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_FAILED_SETUP: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_FAILED_NO_RESOURCE: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_FAILED_CONTROLLER: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_CANCELLING: _ClassVar[ManagedJobStatus]
    MANAGED_JOB_STATUS_CANCELLED: _ClassVar[ManagedJobStatus]
MANAGED_JOB_STATUS_UNSPECIFIED: ManagedJobStatus
MANAGED_JOB_STATUS_PENDING: ManagedJobStatus
MANAGED_JOB_STATUS_STARTING: ManagedJobStatus
MANAGED_JOB_STATUS_RUNNING: ManagedJobStatus
MANAGED_JOB_STATUS_RECOVERING: ManagedJobStatus
MANAGED_JOB_STATUS_SUCCEEDED: ManagedJobStatus
MANAGED_JOB_STATUS_FAILED: ManagedJobStatus
MANAGED_JOB_STATUS_FAILED_SETUP: ManagedJobStatus
MANAGED_JOB_STATUS_FAILED_NO_RESOURCE: ManagedJobStatus
MANAGED_JOB_STATUS_FAILED_CONTROLLER: ManagedJobStatus
MANAGED_JOB_STATUS_CANCELLING: ManagedJobStatus
MANAGED_JOB_STATUS_CANCELLED: ManagedJobStatus

class ManagedJob(_message.Message):
    __slots__ = ("job_id", "name", "user_name", "user_id", "status", "resources", "submitted_at", "started_at", "ended_at", "job_duration_ms", "recovery_count", "cluster_name", "failure_reason", "current_task", "num_tasks", "task_name", "infra")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TASK_FIELD_NUMBER: _ClassVar[int]
    NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    INFRA_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    name: str
    user_name: str
    user_id: str
    status: ManagedJobStatus
    resources: str
    submitted_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    job_duration_ms: int
    recovery_count: int
    cluster_name: str
    failure_reason: str
    current_task: int
    num_tasks: int
    task_name: str
    infra: str
    def __init__(self, job_id: _Optional[int] = ..., name: _Optional[str] = ..., user_name: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[ManagedJobStatus, str]] = ..., resources: _Optional[str] = ..., submitted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., job_duration_ms: _Optional[int] = ..., recovery_count: _Optional[int] = ..., cluster_name: _Optional[str] = ..., failure_reason: _Optional[str] = ..., current_task: _Optional[int] = ..., num_tasks: _Optional[int] = ..., task_name: _Optional[str] = ..., infra: _Optional[str] = ...) -> None: ...

class LaunchManagedJobRequest(_message.Message):
    __slots__ = ("tasks", "name", "idempotency_key")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_clusters_pb2.TaskSpec]
    name: str
    idempotency_key: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[_clusters_pb2.TaskSpec, _Mapping]]] = ..., name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class LaunchManagedJobResponse(_message.Message):
    __slots__ = ("job_id", "name")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    name: str
    def __init__(self, job_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ListManagedJobsRequest(_message.Message):
    __slots__ = ("all_users", "skip_finished", "job_ids", "page_size", "page_token")
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    SKIP_FINISHED_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    all_users: bool
    skip_finished: bool
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    page_size: int
    page_token: str
    def __init__(self, all_users: bool = ..., skip_finished: bool = ..., job_ids: _Optional[_Iterable[int]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListManagedJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[ManagedJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[ManagedJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelManagedJobsRequest(_message.Message):
    __slots__ = ("job_ids", "name", "all", "all_users", "idempotency_key")
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    name: str
    all: bool
    all_users: bool
    idempotency_key: str
    def __init__(self, job_ids: _Optional[_Iterable[int]] = ..., name: _Optional[str] = ..., all: bool = ..., all_users: bool = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CancelManagedJobsResponse(_message.Message):
    __slots__ = ("cancelled_job_ids",)
    CANCELLED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    cancelled_job_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cancelled_job_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class TailManagedJobLogsRequest(_message.Message):
    __slots__ = ("job_id", "name", "follow", "controller", "offset", "tail_lines")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    name: str
    follow: bool
    controller: bool
    offset: int
    tail_lines: int
    def __init__(self, job_id: _Optional[int] = ..., name: _Optional[str] = ..., follow: bool = ..., controller: bool = ..., offset: _Optional[int] = ..., tail_lines: _Optional[int] = ...) -> None: ...

class TailManagedJobLogsResponse(_message.Message):
    __slots__ = ("offset", "data", "job")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    job: ManagedJob
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., job: _Optional[_Union[ManagedJob, _Mapping]] = ...) -> None: ...
