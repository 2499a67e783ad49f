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
    __slots__ = ("name", "enabled", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    enabled: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., enabled: bool = ..., reason: _Optional[str] = ...) -> None: ...
