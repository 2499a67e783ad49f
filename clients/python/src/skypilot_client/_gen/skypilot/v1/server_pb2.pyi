from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_MODE_UNSPECIFIED: _ClassVar[ServerMode]
    SERVER_MODE_LOCAL: _ClassVar[ServerMode]
    SERVER_MODE_DEPLOY: _ClassVar[ServerMode]
SERVER_MODE_UNSPECIFIED: ServerMode
SERVER_MODE_LOCAL: ServerMode
SERVER_MODE_DEPLOY: ServerMode

class User(_message.Message):
    __slots__ = ("name", "id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "commit", "api_version", "min_api_version", "mode", "user", "upload_max_bytes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_API_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    version: str
    commit: str
    api_version: int
    min_api_version: int
    mode: ServerMode
    user: User
    upload_max_bytes: int
    def __init__(self, version: _Optional[str] = ..., commit: _Optional[str] = ..., api_version: _Optional[int] = ..., min_api_version: _Optional[int] = ..., mode: _Optional[_Union[ServerMode, str]] = ..., user: _Optional[_Union[User, _Mapping]] = ..., upload_max_bytes: _Optional[int] = ...) -> None: ...
