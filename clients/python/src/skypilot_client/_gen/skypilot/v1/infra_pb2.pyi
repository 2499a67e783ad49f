from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckRequest(_message.Message):
    __slots__ = ("infras", "idempotency_key")
    INFRAS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    infras: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    def __init__(self, infras: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("infras",)
    INFRAS_FIELD_NUMBER: _ClassVar[int]
    infras: _containers.RepeatedCompositeFieldContainer[InfraCheck]
    def __init__(self, infras: _Optional[_Iterable[_Union[InfraCheck, _Mapping]]] = ...) -> None: ...

class InfraCheck(_message.Message):
    __slots__ = ("name", "enabled", "reason", "hosts", "cpus", "memory_gib", "gpus")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GIB_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    enabled: bool
    reason: str
    hosts: _containers.RepeatedCompositeFieldContainer[HostState]
    cpus: int
    memory_gib: float
    gpus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., enabled: bool = ..., reason: _Optional[str] = ..., hosts: _Optional[_Iterable[_Union[HostState, _Mapping]]] = ..., cpus: _Optional[int] = ..., memory_gib: _Optional[float] = ..., gpus: _Optional[_Iterable[str]] = ...) -> None: ...

class HostState(_message.Message):
    __slots__ = ("host", "address", "ready", "detail", "cpus", "memory_gib", "gpus", "host_key")
    HOST_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GIB_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    HOST_KEY_FIELD_NUMBER: _ClassVar[int]
    host: str
    address: str
    ready: bool
    detail: str
    cpus: int
    memory_gib: float
    gpus: _containers.RepeatedScalarFieldContainer[str]
    host_key: str
    def __init__(self, host: _Optional[str] = ..., address: _Optional[str] = ..., ready: bool = ..., detail: _Optional[str] = ..., cpus: _Optional[int] = ..., memory_gib: _Optional[float] = ..., gpus: _Optional[_Iterable[str]] = ..., host_key: _Optional[str] = ...) -> None: ...

class SshUpRequest(_message.Message):
    __slots__ = ("infra", "idempotency_key")
    INFRA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    infra: str
    idempotency_key: str
    def __init__(self, infra: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SshUpResponse(_message.Message):
    __slots__ = ("pools",)
    POOLS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[InfraCheck]
    def __init__(self, pools: _Optional[_Iterable[_Union[InfraCheck, _Mapping]]] = ...) -> None: ...

class SshDownRequest(_message.Message):
    __slots__ = ("infra", "idempotency_key")
    INFRA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    infra: str
    idempotency_key: str
    def __init__(self, infra: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SshDownResponse(_message.Message):
    __slots__ = ("pools", "clusters")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedScalarFieldContainer[str]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pools: _Optional[_Iterable[str]] = ..., clusters: _Optional[_Iterable[str]] = ...) -> None: ...
