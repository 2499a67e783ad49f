"""`SkyError`: every failed call and every failed operation, and `ErrorReason`,
the generated enum of the reasons it carries."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple, Union, cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from ._gen.skypilot.v1.errors_pb2 import ErrorReason

#: Trailer carrying a serialized google.rpc.Status with typed error details.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: The domain of every ErrorInfo the SkyPilot API server sends.
ERROR_DOMAIN = "skypilot.v1"
#: What the wire spelling of a reason drops from its `ErrorReason` value name:
#: ``ERROR_REASON_NOT_FOUND`` travels as ``NOT_FOUND``.
ERROR_REASON_PREFIX = "ERROR_REASON_"


def parse_error_reason(reason: str) -> "ErrorReason":
    """The `ErrorReason` of a ``google.rpc.ErrorInfo.reason`` as the server
    spells it (the value name without ``ERROR_REASON_``), e.g.
    ``parse_error_reason("NOT_FOUND") == ErrorReason.ERROR_REASON_NOT_FOUND``.

    ``""`` (no reason sent) gives ``ERROR_REASON_UNSPECIFIED``; any other name
    this client does not know (a reason added to the server later, or
    ``"UNSPECIFIED"`` itself, which the server never sends) gives
    ``ERROR_REASON_INTERNAL``, as errors.proto asks clients to treat them.
    """
    if not reason:
        return cast("ErrorReason", ErrorReason.ERROR_REASON_UNSPECIFIED)
    if reason != "UNSPECIFIED":
        try:
            return cast("ErrorReason", ErrorReason.Value(ERROR_REASON_PREFIX + reason))
        except ValueError:
            pass
    return cast("ErrorReason", ErrorReason.ERROR_REASON_INTERNAL)


def error_reason_name(reason: "ErrorReason") -> str:
    """The wire spelling of an `ErrorReason`: its value name without
    ``ERROR_REASON_`` (``"NOT_FOUND"``), and ``""`` for ``ERROR_REASON_UNSPECIFIED``.
    Raises ValueError for a number that is no `ErrorReason` value."""
    if reason == ErrorReason.ERROR_REASON_UNSPECIFIED:
        return ""
    return ErrorReason.Name(reason)[len(ERROR_REASON_PREFIX) :]


_CODES: Dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The `grpc.StatusCode` for a numeric google.rpc.Code (UNKNOWN if unknown)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


class SkyError(Exception):
    """A failed call or a failed (or cancelled) operation.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.NOT_FOUND``.
        reason: the stable ``google.rpc.ErrorInfo.reason`` as sent (e.g. ``NOT_FOUND``,
            ``INVALID_ARGUMENT``, ``IDEMPOTENCY_KEY_REUSED``); ``''`` if none was sent.
            `error_reason` is the same as a generated `ErrorReason` value.
        message: the server's message, for humans.
        retryable: whether the same request may succeed later: the server sent
            ``google.rpc.RetryInfo`` or marked the failed operation retryable, or
            the server could not be reached at all.
        domain: the ErrorInfo domain (``skypilot.v1``), ``''`` if none.
        metadata: the ErrorInfo metadata.
        retry_delay: seconds the server asked to wait before retrying, if it said.
        operation: the name of the failed operation, for operation errors.
    """

    code: grpc.StatusCode
    reason: str
    message: str
    retryable: bool
    domain: str
    metadata: Dict[str, str]
    retry_delay: Optional[float]
    operation: Optional[str]

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: Union[str, "ErrorReason"] = "",
        retryable: bool = False,
        domain: str = "",
        metadata: Optional[Dict[str, str]] = None,
        retry_delay: Optional[float] = None,
        operation: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # An ErrorReason value (an int) is kept in its wire spelling.
        self.reason = reason if isinstance(reason, str) else error_reason_name(reason)
        self.retryable = retryable
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.retry_delay = retry_delay
        self.operation = operation

    @property
    def error_reason(self) -> "ErrorReason":
        """`reason` as the generated enum, to branch on a constant::

            if err.error_reason == ErrorReason.ERROR_REASON_NOT_FOUND: ...

        ``ERROR_REASON_UNSPECIFIED`` when the error carries no reason (a
        transport failure, an error made by the client itself);
        ``ERROR_REASON_INTERNAL`` for a reason this client does not know.
        See `parse_error_reason`."""
        return parse_error_reason(self.reason)

    def __str__(self) -> str:
        label = self.reason or self.code.name
        where = f" (operation {self.operation})" if self.operation else ""
        return f"{label}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"SkyError(code={self.code.name}, reason={self.reason!r}, message={self.message!r}, "
            f"retryable={self.retryable})"
        )

    def __reduce__(self) -> Any:
        # Keeps the error picklable (task runners send exceptions between processes).
        return (_rebuild, (self.code.name, self.message, self._state()))

    def _state(self) -> Dict[str, Any]:
        return {
            "reason": self.reason,
            "retryable": self.retryable,
            "domain": self.domain,
            "metadata": self.metadata,
            "retry_delay": self.retry_delay,
            "operation": self.operation,
        }

    @classmethod
    def from_status(
        cls,
        status: status_pb2.Status,
        *,
        operation: Optional[str] = None,
        transport_code: Optional[grpc.StatusCode] = None,
    ) -> "SkyError":
        """Builds the error from a google.rpc.Status (a failed operation's
        ``error``, or the ``grpc-status-details-bin`` trailer)."""
        code = transport_code if transport_code is not None else status_code(status.code)
        reason, domain, metadata, retry_delay = "", "", {}, None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        retryable = retry_delay is not None or metadata.get("retryable", "").lower() == "true"
        return cls(
            code,
            status.message,
            reason=reason,
            retryable=retryable,
            domain=domain,
            metadata=metadata,
            retry_delay=retry_delay,
            operation=operation,
        )

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "SkyError":
        """Builds the error from a failed call (sync or asyncio)."""
        code = _call_attr(error, "code") or grpc.StatusCode.UNKNOWN
        message = _call_attr(error, "details") or str(error)
        details = _status_details(_call_attr(error, "trailing_metadata"))
        if details is not None:
            status = status_pb2.Status()
            try:
                status.ParseFromString(details)
            except Exception:  # a malformed trailer: keep what the call said
                status = None
            if status is not None:
                if not status.message:
                    status.message = message
                return cls.from_status(status, transport_code=code)
        # No details: a transport failure (nothing listening, connection
        # lost, deadline) or a server that sent only a code.
        return cls(code, message, retryable=code == grpc.StatusCode.UNAVAILABLE)


def _rebuild(code_name: str, message: str, state: Dict[str, Any]) -> SkyError:
    return SkyError(grpc.StatusCode[code_name], message, **state)


def _call_attr(error: grpc.RpcError, name: str) -> Any:
    method = getattr(error, name, None)
    if method is None:
        return None
    try:
        return method()
    except Exception:
        return None


def _status_details(metadata: Optional[Iterable[Tuple[str, Any]]]) -> Optional[bytes]:
    if not metadata:
        return None
    for item in metadata:
        key, value = item[0], item[1]
        if key == STATUS_DETAILS_KEY:
            return value if isinstance(value, bytes) else str(value).encode("latin-1")
    return None
