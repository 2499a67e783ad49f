"""Generated modules, googleapis-common-protos and SkyError, without a server."""

from __future__ import annotations

import pickle
import subprocess
import sys

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, descriptor_pool, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import skypilot_client
from skypilot_client import ErrorReason, SkyError, error_reason_name, parse_error_reason, v1
from skypilot_client._common import operation_error, operation_result, unpack
from skypilot_client.errors import STATUS_DETAILS_KEY

GOOGLE_FILES = ("google/longrunning/operations.proto", "google/rpc/status.proto", "google/rpc/error_details.proto")


def test_google_imports_resolve_against_googleapis_common_protos() -> None:
    pool = descriptor_pool.Default()
    for name in GOOGLE_FILES:
        assert pool.FindFileByName(name).name == name
    # The generated files import those exact names, and the types they use exist.
    dependencies = {
        dep.name
        for module in (v1.clusters_pb2, v1.requests_pb2, v1.infra_pb2)
        for dep in module.DESCRIPTOR.dependencies
    }
    assert "google/longrunning/operations.proto" in dependencies
    assert (
        v1.ListRequestsResponse.DESCRIPTOR.fields_by_name["operations"].message_type
        is operations_pb2.Operation.DESCRIPTOR
    )
    assert operations_pb2.Operation.DESCRIPTOR.fields_by_name["error"].message_type is status_pb2.Status.DESCRIPTOR


def test_no_top_level_skypilot_module_is_claimed() -> None:
    code = "import sys, skypilot_client; from skypilot_client import v1; print('skypilot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert v1.Job.__module__ == "skypilot_client._gen.skypilot.v1.clusters_pb2"
    assert v1.clusters_pb2.__name__ == v1.Job.__module__


def test_v1_exports_every_message_enum_and_stub() -> None:
    modules = (
        v1.clusters_pb2,
        v1.errors_pb2,
        v1.infra_pb2,
        v1.requests_pb2,
        v1.server_pb2,
        v1.uploads_pb2,
        v1.users_pb2,
    )
    for module in modules:
        for name in list(module.DESCRIPTOR.message_types_by_name) + list(module.DESCRIPTOR.enum_types_by_name):
            assert getattr(v1, name) is getattr(module, name)
        for service in module.DESCRIPTOR.services_by_name:
            assert hasattr(v1, f"{service}Stub")


def test_messages_pickle() -> None:
    job = v1.Job(job_id=3, cluster_name="c", status=v1.JobStatus.JOB_STATUS_RUNNING)
    assert pickle.loads(pickle.dumps(job)) == job


def detailed_status() -> status_pb2.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="UNAVAILABLE", domain="skypilot.v1", metadata={"k": "v"}))
    retry = any_pb2.Any()
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)))
    return status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message="restarting", details=[info, retry])


def test_sky_error_from_a_status_with_details() -> None:
    error = SkyError.from_status(detailed_status())
    assert (error.code, error.reason, error.message, error.domain) == (
        grpc.StatusCode.UNAVAILABLE,
        "UNAVAILABLE",
        "restarting",
        "skypilot.v1",
    )
    assert error.retryable and error.retry_delay == 1.5 and error.metadata == {"k": "v"}
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.reason, copy.retryable, str(copy)) == (error.code, error.reason, True, str(error))


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailers: tuple) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailers


def test_sky_error_from_the_status_details_trailer() -> None:
    trailers = ((STATUS_DETAILS_KEY, detailed_status().SerializeToString()),)
    error = SkyError.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "restarting", trailers))
    assert error.reason == "UNAVAILABLE" and error.retryable
    bare = SkyError.from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "gone", ()))
    assert (bare.code, bare.reason, bare.message, bare.retryable) == (grpc.StatusCode.NOT_FOUND, "", "gone", False)


def test_failed_and_successful_operations() -> None:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason="RESOURCE_EXHAUSTED", domain="skypilot.v1", metadata={"retryable": "true"})
    )
    failed = operations_pb2.Operation(
        name="operations/1",
        done=True,
        error=status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="full", details=[info]),
    )
    error = operation_error(failed)
    assert error is not None
    assert (error.code, error.reason, error.retryable, error.operation) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RESOURCE_EXHAUSTED",
        True,
        "operations/1",
    )
    response = any_pb2.Any()
    response.Pack(v1.LaunchResponse(cluster_name="c", job_id=7))
    done = operations_pb2.Operation(name="operations/2", done=True, response=response)
    assert operation_result(done) == v1.LaunchResponse(cluster_name="c", job_id=7)
    unknown = any_pb2.Any(type_url="type.googleapis.com/some.Other", value=b"")
    assert unpack(unknown) is unknown


def test_public_names() -> None:
    for name in ("Client", "AsyncClient", "Operation", "AsyncOperation", "SkyError", "Task", "ErrorReason"):
        assert hasattr(skypilot_client, name)
    assert skypilot_client.ErrorReason is v1.ErrorReason is v1.errors_pb2.ErrorReason


def test_every_error_reason_round_trips_through_its_wire_name() -> None:
    values = [value for value in ErrorReason.values() if value != ErrorReason.ERROR_REASON_UNSPECIFIED]
    assert len(values) == len(ErrorReason.values()) - 1 and ErrorReason.ERROR_REASON_INTERNAL in values
    for value in values:
        name = error_reason_name(value)
        assert name == ErrorReason.Name(value)[len("ERROR_REASON_") :] and not name.startswith("ERROR_REASON_")
        assert parse_error_reason(name) == value
        # As the server sends it, in a status detail, and back.
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=name, domain="skypilot.v1"))
        error = SkyError.from_status(status_pb2.Status(code=13, message="m", details=[info]))
        assert (error.reason, error.error_reason) == (name, value)
        assert SkyError(grpc.StatusCode.INTERNAL, "m", reason=value).reason == name
        assert pickle.loads(pickle.dumps(error)).error_reason == value
    assert parse_error_reason("NOT_FOUND") == ErrorReason.ERROR_REASON_NOT_FOUND
    assert parse_error_reason("STORAGE_FULL") == ErrorReason.ERROR_REASON_STORAGE_FULL


def test_missing_and_unknown_error_reasons() -> None:
    assert error_reason_name(ErrorReason.ERROR_REASON_UNSPECIFIED) == ""
    assert parse_error_reason("") == ErrorReason.ERROR_REASON_UNSPECIFIED
    # Unknown (newer) reasons are treated like INTERNAL, as errors.proto asks;
    # so are the prefixed, lower-case and UNSPECIFIED spellings the server never sends.
    for name in ("SOMETHING_NEW", "ERROR_REASON_NOT_FOUND", "not_found", "UNSPECIFIED"):
        assert parse_error_reason(name) == ErrorReason.ERROR_REASON_INTERNAL
    bare = SkyError.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "no server", ()))
    assert (bare.reason, bare.error_reason) == ("", ErrorReason.ERROR_REASON_UNSPECIFIED)
    newer = SkyError(grpc.StatusCode.UNKNOWN, "m", reason="SOMETHING_NEW")
    assert (newer.reason, newer.error_reason) == ("SOMETHING_NEW", ErrorReason.ERROR_REASON_INTERNAL)
