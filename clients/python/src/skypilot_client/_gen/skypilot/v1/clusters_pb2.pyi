from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLUSTER_STATUS_UNSPECIFIED: _ClassVar[ClusterStatus]
    CLUSTER_STATUS_INIT: _ClassVar[ClusterStatus]
    CLUSTER_STATUS_UP: _ClassVar[ClusterStatus]
    CLUSTER_STATUS_STOPPED: _ClassVar[ClusterStatus]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_SETTING_UP: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED_SETUP: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
CLUSTER_STATUS_UNSPECIFIED: ClusterStatus
CLUSTER_STATUS_INIT: ClusterStatus
CLUSTER_STATUS_UP: ClusterStatus
CLUSTER_STATUS_STOPPED: ClusterStatus
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_SETTING_UP: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_FAILED_SETUP: JobStatus
JOB_STATUS_CANCELLED: JobStatus

class TaskSpec(_message.Message):
    __slots__ = ("name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run")
    class EnvsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FileMountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    FILE_MOUNTS_FIELD_NUMBER: _ClassVar[int]
    SETUP_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    workdir: str
    num_nodes: int
    resources: Resources
    envs: _containers.ScalarMap[str, str]
    secrets: _containers.ScalarMap[str, str]
    file_mounts: _containers.ScalarMap[str, str]
    setup: str
    run: str
    def __init__(self, name: _Optional[str] = ..., workdir: _Optional[str] = ..., num_nodes: _Optional[int] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., envs: _Optional[_Mapping[str, str]] = ..., secrets: _Optional[_Mapping[str, str]] = ..., file_mounts: _Optional[_Mapping[str, str]] = ..., setup: _Optional[str] = ..., run: _Optional[str] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("infra", "cpus", "memory", "accelerators", "ports", "autostop_idle_minutes", "autostop_down", "job_recovery")
    INFRA_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    AUTOSTOP_IDLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    AUTOSTOP_DOWN_FIELD_NUMBER: _ClassVar[int]
    JOB_RECOVERY_FIELD_NUMBER: _ClassVar[int]
    infra: str
    cpus: str
    memory: str
    accelerators: str
    ports: _containers.RepeatedScalarFieldContainer[str]
    autostop_idle_minutes: int
    autostop_down: bool
    job_recovery: JobRecovery
    def __init__(self, infra: _Optional[str] = ..., cpus: _Optional[str] = ..., memory: _Optional[str] = ..., accelerators: _Optional[str] = ..., ports: _Optional[_Iterable[str]] = ..., autostop_idle_minutes: _Optional[int] = ..., autostop_down: bool = ..., job_recovery: _Optional[_Union[JobRecovery, _Mapping]] = ...) -> None: ...

class JobRecovery(_message.Message):
    __slots__ = ("strategy", "max_restarts_on_errors")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_ON_ERRORS_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    max_restarts_on_errors: int
    def __init__(self, strategy: _Optional[str] = ..., max_restarts_on_errors: _Optional[int] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("name", "infra", "status", "num_nodes", "cpus", "memory_gib", "accelerators", "autostop_idle_minutes", "autostop_down", "launched_at", "user_name", "user_id", "idle_since", "nodes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INFRA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GIB_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    AUTOSTOP_IDLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    AUTOSTOP_DOWN_FIELD_NUMBER: _ClassVar[int]
    LAUNCHED_AT_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    IDLE_SINCE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    name: str
    infra: str
    status: ClusterStatus
    num_nodes: int
    cpus: float
    memory_gib: float
    accelerators: str
    autostop_idle_minutes: int
    autostop_down: bool
    launched_at: _timestamp_pb2.Timestamp
    user_name: str
    user_id: str
    idle_since: _timestamp_pb2.Timestamp
    nodes: _containers.RepeatedCompositeFieldContainer[ClusterNode]
    def __init__(self, name: _Optional[str] = ..., infra: _Optional[str] = ..., status: _Optional[_Union[ClusterStatus, str]] = ..., num_nodes: _Optional[int] = ..., cpus: _Optional[float] = ..., memory_gib: _Optional[float] = ..., accelerators: _Optional[str] = ..., autostop_idle_minutes: _Optional[int] = ..., autostop_down: bool = ..., launched_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., user_name: _Optional[str] = ..., user_id: _Optional[str] = ..., idle_since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[ClusterNode, _Mapping]]] = ...) -> None: ...

class ClusterNode(_message.Message):
    __slots__ = ("rank", "address", "host", "reachable", "detail")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    rank: int
    address: str
    host: str
    reachable: bool
    detail: str
    def __init__(self, rank: _Optional[int] = ..., address: _Optional[str] = ..., host: _Optional[str] = ..., reachable: bool = ..., detail: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "cluster_name", "name", "status", "user_name", "user_id", "submitted_at", "started_at", "ended_at", "cpus", "accelerators", "exit_code", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    cluster_name: str
    name: str
    status: JobStatus
    user_name: str
    user_id: str
    submitted_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    cpus: float
    accelerators: str
    exit_code: int
    message: str
    def __init__(self, job_id: _Optional[int] = ..., cluster_name: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., user_name: _Optional[str] = ..., user_id: _Optional[str] = ..., submitted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cpus: _Optional[float] = ..., accelerators: _Optional[str] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class LaunchRequest(_message.Message):
    __slots__ = ("task", "cluster_name", "no_setup", "down", "idle_minutes_to_autostop", "dryrun", "idempotency_key")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NO_SETUP_FIELD_NUMBER: _ClassVar[int]
    DOWN_FIELD_NUMBER: _ClassVar[int]
    IDLE_MINUTES_TO_AUTOSTOP_FIELD_NUMBER: _ClassVar[int]
    DRYRUN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    task: TaskSpec
    cluster_name: str
    no_setup: bool
    down: bool
    idle_minutes_to_autostop: int
    dryrun: bool
    idempotency_key: str
    def __init__(self, task: _Optional[_Union[TaskSpec, _Mapping]] = ..., cluster_name: _Optional[str] = ..., no_setup: bool = ..., down: bool = ..., idle_minutes_to_autostop: _Optional[int] = ..., dryrun: bool = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class LaunchResponse(_message.Message):
    __slots__ = ("cluster_name", "job_id", "summary")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    job_id: int
    summary: str
    def __init__(self, cluster_name: _Optional[str] = ..., job_id: _Optional[int] = ..., summary: _Optional[str] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("cluster_name", "task", "idempotency_key")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    task: TaskSpec
    idempotency_key: str
    def __init__(self, cluster_name: _Optional[str] = ..., task: _Optional[_Union[TaskSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ExecResponse(_message.Message):
    __slots__ = ("cluster_name", "job_id")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    job_id: int
    def __init__(self, cluster_name: _Optional[str] = ..., job_id: _Optional[int] = ...) -> None: ...

class ClusterActionRequest(_message.Message):
    __slots__ = ("cluster_name", "purge", "idempotency_key")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    purge: bool
    idempotency_key: str
    def __init__(self, cluster_name: _Optional[str] = ..., purge: bool = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ClusterActionResponse(_message.Message):
    __slots__ = ("cluster_name", "status")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    status: ClusterStatus
    def __init__(self, cluster_name: _Optional[str] = ..., status: _Optional[_Union[ClusterStatus, str]] = ...) -> None: ...

class AutostopRequest(_message.Message):
    __slots__ = ("cluster_name", "idle_minutes", "down", "cancel", "idempotency_key")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    IDLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    DOWN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    idle_minutes: int
    down: bool
    cancel: bool
    idempotency_key: str
    def __init__(self, cluster_name: _Optional[str] = ..., idle_minutes: _Optional[int] = ..., down: bool = ..., cancel: bool = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ("cluster_names", "all_users", "refresh")
    CLUSTER_NAMES_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    cluster_names: _containers.RepeatedScalarFieldContainer[str]
    all_users: bool
    refresh: bool
    def __init__(self, cluster_names: _Optional[_Iterable[str]] = ..., all_users: bool = ..., refresh: bool = ...) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    def __init__(self, clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("cluster_name", "skip_finished", "all_users", "page_size", "page_token")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SKIP_FINISHED_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    skip_finished: bool
    all_users: bool
    page_size: int
    page_token: str
    def __init__(self, cluster_name: _Optional[str] = ..., skip_finished: bool = ..., all_users: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobsRequest(_message.Message):
    __slots__ = ("cluster_name", "job_ids", "all", "idempotency_key")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    job_ids: _containers.RepeatedScalarFieldContainer[int]
    all: bool
    idempotency_key: str
    def __init__(self, cluster_name: _Optional[str] = ..., job_ids: _Optional[_Iterable[int]] = ..., all: bool = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CancelJobsResponse(_message.Message):
    __slots__ = ("cancelled_job_ids",)
    CANCELLED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    cancelled_job_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cancelled_job_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class TailJobLogsRequest(_message.Message):
    __slots__ = ("cluster_name", "job_id", "follow", "tail_lines", "offset")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    job_id: int
    follow: bool
    tail_lines: int
    offset: int
    def __init__(self, cluster_name: _Optional[str] = ..., job_id: _Optional[int] = ..., follow: bool = ..., tail_lines: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class TailJobLogsResponse(_message.Message):
    __slots__ = ("offset", "data", "job")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    job: Job
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...
