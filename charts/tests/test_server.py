"""The real server, started with the args and environment the chart's
StatefulSet gives it: only the data dir (a temporary one), the ports (0), the
listen address (127.0.0.1), HOME and mounted files are swapped for local ones.
Then the admin from the chart's Secret logs in with the `sky` CLI."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chart import REPO, VARIANTS, Rendered, SecretRef, render, render_variant

START_TIMEOUT = 30
STOP_TIMEOUT = 60
# Settings the server reads from its environment only, never from a flag, so
# that a credential never shows in `ps`: `--help` does not list them. Each
# names a file, and the server refuses to start when that file cannot be read.
ENVIRONMENT_ONLY_FILE_SETTINGS = ("SKYPILOT_INITIAL_BASIC_AUTH", "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")


# --------------------------------------------------------------------------- the binary


@pytest.fixture(scope="session")
def sky() -> str:
    path = Path(os.environ.get("SKY_BIN") or REPO / "target" / "debug" / "sky")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no sky binary at {path}: build it (cargo build --bin sky) or set SKY_BIN")
    return str(path)


@dataclass(frozen=True)
class Help:
    """What `sky <command> --help` lists: each option's flag with its
    description, and the environment variable of each option that has one."""

    options: dict[str, str]
    env: dict[str, str]  # variable -> flag


@lru_cache(maxsize=None)
def command_help(sky: str, command: tuple[str, ...]) -> Help:
    done = subprocess.run(
        [sky, *command, "--help"], capture_output=True, text=True, timeout=30, env=client_env(Path("/nonexistent"))
    )
    assert done.returncode == 0, f"sky {' '.join(command)} --help failed:\n{done.stderr}"
    options: dict[str, str] = {}
    flag = None
    for line in done.stdout.splitlines():
        start = re.match(r"\s+(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", line)
        if start:
            flag = start.group(1)
            options[flag] = line[start.end() :]
        elif flag is not None and line.startswith(" "):
            options[flag] += " " + line.strip()
        else:
            flag = None
    env = {name: flag for flag, text in options.items() for name in re.findall(r"\[env: (\w+)=", text)}
    return Help(options, env)


# --------------------------------------------------------------------------- processes


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no SKYPILOT_* settings of the machine running the tests."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


class ServerProcess:
    """A server in the foreground whose JSON log lines are read as they come."""

    def __init__(self, command: list[str], env: dict[str, str], log_dir: Path):
        self.command = command
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stdout = open(log_dir / "server.stdout", "wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self) -> str:
        """Reads log lines until the server says it is serving; returns host:port."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the server did not report serving within {START_TIMEOUT}s:\n{self.log()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"the server exited ({self.process.returncode}) before serving:\n{self.log()}")
            fields = parse_log_line(line)
            if fields.get("message") == "API server is serving":
                return fields["address"]

    def wait_refusal(self, what: str) -> int:
        """Waits for a server that must refuse to start; returns its exit code.
        Fails the test as soon as it reports serving."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the server neither served nor exited within {START_TIMEOUT}s ({what}):\n{self.log()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                return self.process.wait(timeout=STOP_TIMEOUT)
            if parse_log_line(line).get("message") == "API server is serving":
                pytest.fail(f"the server started {what}:\n{self.log()}")

    def listening_ports(self) -> set[int]:
        """TCP ports the server process listens on (from /proc)."""
        return {port for _, port in self.listening_sockets()}

    def listening_sockets(self) -> set[tuple[str, int]]:
        """(address, port) of every TCP socket the server process listens on (from /proc)."""
        inodes = set()
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
        sockets = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    address, port = fields[1].rsplit(":", 1)
                    # The kernel prints the address as 32-bit words in host (little-endian) order.
                    raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
                    sockets.add((str(ipaddress.ip_address(raw)), int(port, 16)))
        return sockets

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self._stdout.close()


def parse_log_line(line: str) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record.get("fields", {}) if isinstance(record, dict) else {}


@pytest.fixture
def processes(tmp_path):
    """Starts servers and remembers client homes; stops every process at the end."""
    started: list[ServerProcess] = []
    homes: list[Path] = []

    class Processes:
        def server(self, command, env) -> ServerProcess:
            server = ServerProcess(command, env, tmp_path)
            started.append(server)
            return server

        def home(self, name: str) -> Path:
            home = tmp_path / name
            home.mkdir()
            homes.append(home)
            return home

    try:
        yield Processes()
    finally:
        for server in started:
            server.stop()
        # A CLI that found no saved endpoint would have started a local server: stop it.
        for home in homes:
            pid_file = home / ".sky" / "api_server" / "server.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
                except (OSError, ValueError, IndexError):
                    pass


# --------------------------------------------------------------------------- the chart's server


class ChartServer:
    """How the chart's StatefulSet runs the server, made local. Every Secret
    volume's mount path maps to a local directory; the files of the Secrets the
    chart renders (and of `external_secrets`: name -> key -> value, standing for
    Secrets that exist in the cluster) are written there as the kubelet would,
    and arguments and environment values under a mount path point to them."""

    def __init__(
        self,
        rendered: Rendered,
        sky: str,
        root: Path,
        external_secrets: dict[str, dict[str, str]] | None = None,
    ):
        self.rendered = rendered
        self.data_dir = root / "data"
        self.home = root / "server-home"
        self.home.mkdir()
        self.mounts = root / "mounts"
        container = rendered.container
        assert "command" not in container, "the chart relies on the image's entrypoint, sky"
        self.secret_mounts = self.mount_dirs(rendered, root)
        local_path = self.local_path

        # The kubelet writes each item's bytes as they are, with the volume's
        # mode. Secrets neither rendered nor given (TLS) are left to the test.
        external_secrets = external_secrets or {}
        for path, mounted in rendered.secret_files(external_secrets).items():
            content = mounted.content
            if isinstance(content, SecretRef):
                if content.name not in external_secrets:
                    continue
                content = external_secrets[content.name][content.key]
            local = Path(local_path(path))
            assert local != Path(path), f"{path} is under no mapped mount"
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(content)
            # In the pod root owns the file and the server reads it through its
            # group (fsGroup); here the server's user owns it, so the owner gets
            # the group's bits: a mode that left the group nothing fails here too.
            local.chmod((mounted.mode & 0o070) << 3 | mounted.mode & 0o077)

        replace = {
            "--data-dir": str(self.data_dir),
            "--port": "0",
            "--host": "127.0.0.1",
            "--health-port": "0",
            "--metrics-port": "0",
        }
        args = rendered.args
        command = [sky]
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in replace and i + 1 < len(args):
                command += [arg, replace[arg]]
                i += 2
                continue
            command.append(local_path(arg))
            i += 1
        self.command = command

        env = {}
        for name, value in rendered.environment().items():
            if isinstance(value, SecretRef):
                pytest.fail(f"{name} comes from Secret {value.name}, which the chart does not render")
            local = local_path(value)
            if local != value and not Path(local).is_file():
                pytest.fail(f"{name}={value}: no such file is mounted (a Secret the chart does not render?)")
            env[name] = local
        if "SKYPILOT_API_SERVER_DATA_DIR" in env:
            env["SKYPILOT_API_SERVER_DATA_DIR"] = str(self.data_dir)
        if "SKYPILOT_HEALTH_PORT" in env:
            env["SKYPILOT_HEALTH_PORT"] = "0"
        if "SKYPILOT_METRICS_PORT" in env:
            env["SKYPILOT_METRICS_PORT"] = "0"
        env["HOME"] = str(self.home)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        self.env = env

    @staticmethod
    def mount_dirs(rendered: Rendered, root: Path) -> dict[str, Path]:
        """The local directory of every Secret volume's mount path."""
        return {
            mount["mountPath"].rstrip("/"): root / "mounts" / mount["name"]
            for mount in rendered.container.get("volumeMounts", [])
            for volume in rendered.pod.get("volumes", [])
            if volume["name"] == mount["name"] and "secret" in volume
        }

    def local_path(self, value: str) -> str:
        """`value` with a Secret mount path replaced by its local directory."""
        for mount_path, local in self.secret_mounts.items():
            if value.startswith(mount_path + "/"):
                return str(local / value[len(mount_path) + 1 :])
        return value

    def mounted_file(self, env_name: str) -> str:
        """What the server finds in the file its variable `env_name` names
        (trimmed, as the server reads it): the variable holds only the path."""
        path = Path(self.env[env_name])
        assert path.is_file() and path.is_relative_to(self.mounts), f"{env_name} must name a mounted file: {path}"
        return path.read_text().strip()

    def admin(self) -> tuple[str, str]:
        user, _, password = self.mounted_file("SKYPILOT_INITIAL_BASIC_AUTH").partition(":")
        return user, password

    def initial_token(self) -> str:
        return self.mounted_file("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")

    def assert_no_secret_in_env(self, *secrets: str) -> None:
        for name, value in self.env.items():
            assert not any(secret in value for secret in secrets), f"a credential is in the server's {name}"


def admin_url(scheme: str, user: str, password: str, address: str) -> str:
    quote = lambda text: urllib.parse.quote(text, safe="")  # noqa: E731
    return f"{scheme}://{quote(user)}:{quote(password)}@{address}"


def health(address: str, service: str = "", credentials: grpc.ChannelCredentials | None = None) -> int:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10, wait_for_ready=True)
    return reply.status


def health_refusal(address: str, credentials: grpc.ChannelCredentials, options=()) -> grpc.RpcError:
    """The error of a health check over TLS that the client must refuse."""
    with grpc.secure_channel(address, credentials, options=list(options)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return refused.value


def run_sky(sky: str, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sky, *args], env=client_env(home, **env), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def login_and_check(sky: str, home: Path, login_args: list[str], user: str, **env: str) -> str:
    login = run_sky(sky, home, "api", "login", *login_args, **env)
    assert login.returncode == 0, f"sky api login failed:\n{login.stdout}\n{login.stderr}"
    assert "endpoint:" in (home / ".sky" / "skyconfig.yaml").read_text(), "login saved no endpoint"
    info = run_sky(sky, home, "api", "info")
    assert info.returncode == 0, f"sky api info failed:\n{info.stdout}\n{info.stderr}"
    assert "(local default)" not in info.stdout, info.stdout
    assert "healthy" in info.stdout, info.stdout
    assert f"User: {user} (" in info.stdout and "role: admin" in info.stdout, info.stdout
    return info.stdout


def probe_service(rendered: Rendered) -> str:
    return rendered.container["readinessProbe"]["grpc"].get("service", "")


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("variant", ["default", "initial-token"])
def test_the_admin_from_the_charts_secret_logs_into_the_charts_server(variant, sky, processes, tmp_path):
    rendered = render_variant(variant)
    chart_server = ChartServer(rendered, sky, tmp_path)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    assert address.startswith("127.0.0.1:")
    # What the kubelet's probes ask (without TLS they use the main port).
    assert health(address, probe_service(rendered)) == health_pb2.HealthCheckResponse.SERVING
    assert (chart_server.data_dir / "server.pid").exists(), "the server must use the data dir from --data-dir"

    user, password = chart_server.admin()
    # The server read the password from the mounted file: its environment has the path only.
    assert chart_server.rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == f"{user}:{password}"
    chart_server.assert_no_secret_in_env(password)
    home = processes.home("client")
    login_and_check(sky, home, ["-e", admin_url("http", user, password, address)], user)
    assert password not in server.log(), "the admin's password must not be logged"


def test_the_initial_token_logs_in_as_the_admin(sky, processes, tmp_path):
    rendered = render_variant("initial-token")
    chart_server = ChartServer(rendered, sky, tmp_path)
    token = chart_server.initial_token()
    assert token == rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
    chart_server.assert_no_secret_in_env(token)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    user, _ = chart_server.admin()
    home = processes.home("automation")
    login_and_check(sky, home, ["-e", f"http://{address}", "--token", token], user)
    assert token not in server.log(), "the token must not be logged"


def test_an_existing_secrets_files_with_trailing_newlines_log_in(sky, processes, tmp_path):
    """`kubectl create secret --from-file` keeps a file's final newline; the
    server trims what it reads."""
    rendered = render_variant("existing-secret")
    password, token = "ops-chosen-password-42", "sky_" + "5e" * 32
    secret = {"admin-basic-auth": f"ops:{password}\n", "ci-token": f"{token}\n"}
    chart_server = ChartServer(rendered, sky, tmp_path, {"team-skypilot-credentials": secret})
    chart_server.assert_no_secret_in_env(password, token)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    assert chart_server.admin() == ("ops", password)
    login_and_check(sky, processes.home("client"), ["-e", admin_url("http", "ops", password, address)], "ops")
    login_and_check(sky, processes.home("automation"), ["-e", f"http://{address}", "--token", token], "ops")
    assert password not in server.log() and token not in server.log()


def test_an_unreadable_credentials_file_stops_the_first_start(sky, processes, tmp_path):
    """Were the mounted file unreadable (say, no fsGroup in the pod), the server
    must refuse to start rather than make an admin with a generated password."""
    chart_server = ChartServer(render_variant("default"), sky, tmp_path)
    path = Path(chart_server.env["SKYPILOT_INITIAL_BASIC_AUTH"])
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads a file whatever its mode, but no directory
        path.unlink()
        path.mkdir()
    server = processes.server(chart_server.command, chart_server.env)
    code = server.wait_refusal("without reading its initial credentials")
    assert code != 0, server.log()
    server.stop()
    assert "SKYPILOT_INITIAL_BASIC_AUTH" in server.log(), server.log()
    assert "cannot be read" in server.log(), server.log()


def certificate_builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    """A certificate of `key` for `subject` by `issuer`, valid from just before now for two days."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def make_tls_files(directory: Path) -> Path:
    """A private CA and a server certificate for 127.0.0.1 and localhost, as the
    kubernetes.io/tls Secret's tls.crt and tls.key; returns the CA certificate."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        certificate_builder("chart test CA", "chart test CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = (
        certificate_builder("localhost", "chart test CA", server_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True)
    (directory / "tls.crt").write_bytes(server.public_bytes(pem))
    key = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / "tls.key").write_bytes(key)
    ca_cert = directory.parent / "ca.crt"
    ca_cert.write_bytes(ca.public_bytes(pem))
    return ca_cert


def start_tls_server(
    sky, processes, tmp_path, rendered: Rendered | None = None
) -> tuple[ChartServer, ServerProcess, str, Path]:
    """The chart's TLS server (the tls variant, unless `rendered` is given)."""
    rendered = rendered or render_variant("tls")
    chart_server = ChartServer(rendered, sky, tmp_path)
    tls_dir = Path(chart_server.local_path(rendered.arg("--tls-cert"))).parent
    assert tls_dir in chart_server.secret_mounts.values() and not tls_dir.exists()
    ca_cert = make_tls_files(tls_dir)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    return chart_server, server, address, ca_cert


def test_the_admin_logs_into_the_charts_tls_server(sky, processes, tmp_path):
    chart_server, _, address, ca_cert = start_tls_server(sky, processes, tmp_path)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes())
    assert health(address, "", credentials) == health_pb2.HealthCheckResponse.SERVING
    # A client without the CA, or one that expects another name, refuses the certificate.
    untrusted = health_refusal(address, grpc.ssl_channel_credentials())
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.details(), untrusted.details()
    renamed = health_refusal(address, credentials, [("grpc.ssl_target_name_override", "other.example")])
    assert "Hostname Verification Check failed" in renamed.details(), renamed.details()

    user, password = chart_server.admin()
    home = processes.home("client")
    (home / ".sky").mkdir()
    (home / ".sky" / "skyconfig.yaml").write_text(f"api_server:\n  ca_cert: {ca_cert}\n")
    # `sky api login` verifies with the system roots only (see the next test),
    # so it is given the CA that way; `sky api info` then uses api_server.ca_cert.
    info = login_and_check(
        sky, home, ["-e", admin_url("https", user, password, address)], user, SSL_CERT_FILE=str(ca_cert)
    )
    assert "https://" in info


def test_login_trusts_the_configured_ca_cert(sky, processes, tmp_path):
    chart_server, _, address, ca_cert = start_tls_server(sky, processes, tmp_path)
    user, password = chart_server.admin()
    home = processes.home("client")
    (home / ".sky").mkdir()
    (home / ".sky" / "skyconfig.yaml").write_text(f"api_server:\n  ca_cert: {ca_cert}\n")
    login_and_check(sky, home, ["-e", admin_url("https", user, password, address)], user)


def test_probes_reach_the_tls_server_through_its_plaintext_health_listener(sky, processes, tmp_path):
    chart_server, server, address, _ = start_tls_server(sky, processes, tmp_path)
    main_port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + START_TIMEOUT
    others = server.listening_ports() - {main_port}
    while not others and time.monotonic() < deadline and server.process.poll() is None:
        time.sleep(0.05)  # the health listener may open just after the main one
        others = server.listening_ports() - {main_port}
    assert len(others) == 1, f"expected one health listener besides {main_port}, found {sorted(others)}"
    (health_port,) = others
    # What the kubelet does: plaintext grpc.health.v1 on the health port.
    service = probe_service(chart_server.rendered)
    assert health(f"127.0.0.1:{health_port}", service) == health_pb2.HealthCheckResponse.SERVING


# A proxy of the machine running the tests must not stand between them and the server.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, user: str | None = None, password: str | None = None) -> tuple[int, dict[str, str], str]:
    """A plain HTTP/1.1 GET, with basic credentials when given: the status, the
    headers (names in lowercase) and the body."""
    request = urllib.request.Request(url)
    if user is not None:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    try:
        with HTTP.open(request, timeout=10) as reply:
            status, headers, body = reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as refused:
        status, headers, body = refused.code, refused.headers, refused.read()
    return status, {name.lower(): value for name, value in headers.items()}, body.decode()


def metrics_listener(server: ServerProcess, address: str) -> int:
    """The port of the server's plaintext metrics listener: of the ports it
    listens on besides the API's, the one that answers GET /metrics."""
    main_port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = []
        for port in sorted(server.listening_ports() - {main_port}):
            try:
                status, _, _ = http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue  # the health listener speaks gRPC (HTTP/2) only
            if status == 200:
                found.append(port)
        if found or time.monotonic() > deadline or server.process.poll() is not None:
            break
        time.sleep(0.05)
    assert len(found) == 1, f"expected one metrics listener besides {main_port}, found {found}:\n{server.log()}"
    return found[0]


def scrape_until(port: int, pattern: str) -> str:
    """GET /metrics on the plaintext metrics port, without credentials, until
    the page matches `pattern` (a call is counted as it ends); returns the page."""
    deadline = time.monotonic() + 10
    while True:
        status, headers, page = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, f"GET /metrics on the metrics port: {status} {page}"
        assert headers["content-type"].startswith("application/openmetrics-text"), headers
        if re.search(pattern, page, re.MULTILINE) or time.monotonic() > deadline:
            assert re.search(pattern, page, re.MULTILINE), f"no line matches {pattern}:\n{page}"
            return page
        time.sleep(0.1)


def sample(page: str, name: str) -> float:
    """The value of the sample `name` (with its labels, if any) on a metrics page."""
    values = [line[len(name) + 1 :].split()[0] for line in page.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name}: {values}\n{page}"
    return float(values[0])


def test_the_metrics_port_serves_prometheus_without_credentials(sky, processes, tmp_path):
    rendered = render_variant("metrics")
    chart_server = ChartServer(rendered, sky, tmp_path)
    assert chart_server.env["SKYPILOT_METRICS_PORT"] == "0", "the chart's metrics port, made a free one here"
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    port = metrics_listener(server, address)
    # The listener is opened on the API's listen address (--host), not on every interface.
    assert ("127.0.0.1", port) in server.listening_sockets(), server.listening_sockets()

    # The metrics count the calls made on the API port: the probes' and the CLI's.
    assert health(address, probe_service(rendered)) == health_pb2.HealthCheckResponse.SERVING
    user, password = chart_server.admin()
    login_and_check(sky, processes.home("client"), ["-e", admin_url("http", user, password, address)], user)
    page = scrape_until(port, r'^skypilot_grpc_calls_total\{method="/skypilot\.v1\.[^"]+",code="OK"\} [1-9]')
    assert re.search(r'^skypilot_grpc_calls_total\{method="/grpc\.health\.v1\.Health/Check",code="OK"\} [1-9]',
                     page, re.MULTILINE), page  # fmt: skip
    assert "# TYPE skypilot_grpc_latency_seconds histogram" in page, page
    assert re.search(r"^skypilot_store_size_bytes \d+", page, re.MULTILINE), page
    assert all(
        line.startswith(("skypilot_", "# HELP skypilot_", "# TYPE skypilot_", "# UNIT skypilot_", "# EOF"))
        for line in page.splitlines()
        if line
    ), page
    assert password not in page


def test_metrics_on_the_api_port_need_the_credentials_of_any_call(sky, processes, tmp_path):
    chart_server = ChartServer(render_variant("metrics"), sky, tmp_path)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    metrics = f"http://{address}/metrics"
    user, password = chart_server.admin()

    metrics_port = metrics_listener(server, address)
    failures = sample(scrape_until(metrics_port, r"^skypilot_auth_failures_total "), "skypilot_auth_failures_total")

    status, headers, body = http_get(metrics)
    assert status == 401, f"GET /metrics on the API port without credentials: {status} {body}"
    assert headers.get("www-authenticate", "").startswith("Basic"), headers
    assert "skypilot_" not in body
    status, _, body = http_get(metrics, user, password + "-wrong")
    assert status == 401 and "skypilot_" not in body, f"{status} {body}"
    # Both refusals are counted as failed authentications.
    after = scrape_until(metrics_port, r"^skypilot_auth_failures_total ")
    assert sample(after, "skypilot_auth_failures_total") == failures + 2, after

    status, headers, page = http_get(metrics, user, password)
    assert status == 200, f"GET /metrics on the API port as the admin: {status} {page}"
    assert headers["content-type"].startswith("application/openmetrics-text") and "# TYPE skypilot_" in page, page
    assert password not in server.log(), "the admin's password must not be logged"


def test_the_metrics_port_stays_plaintext_beside_the_tls_api(sky, processes, tmp_path):
    rendered = render("tls", values_files=["metrics.yaml"])
    chart_server, server, address, ca_cert = start_tls_server(sky, processes, tmp_path, rendered)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes())
    assert health(address, "", credentials) == health_pb2.HealthCheckResponse.SERVING
    port = metrics_listener(server, address)
    # Three listeners: the TLS API, the probes' plaintext health listener and the metrics one.
    main_port = int(address.rsplit(":", 1)[1])
    (health_port,) = server.listening_ports() - {main_port, port}
    env = rendered.environment()
    probe = rendered.container["readinessProbe"]["grpc"]["port"]
    assert probe == int(env["SKYPILOT_HEALTH_PORT"]) != int(env["SKYPILOT_METRICS_PORT"])
    assert health(f"127.0.0.1:{health_port}", probe_service(rendered)) == health_pb2.HealthCheckResponse.SERVING
    scrape_until(port, r'^skypilot_grpc_calls_total\{method="/grpc\.health\.v1\.Health/Check",code="OK"\} [1-9]')


# --------------------------------------------------------------------------- the dashboard through the Ingresses
#
# ingress-nginx talks to the server as each Ingress' backend-protocol says. The
# page goes through the dashboard's Ingress (HTTP: nginx's proxy_pass, HTTP/1.1;
# HTTPS: the same over TLS, which proxy_pass starts without ALPN), its
# gRPC-Web calls through the main one (GRPC: grpc_pass, HTTP/2 with prior
# knowledge; GRPCS: HTTP/2 over TLS with ALPN h2), which turns the browser's
# HTTP/1.1 or HTTP/2 request into an HTTP/2 one without TE (browsers send none).
# These tests send the server requests of those shapes (no nginx runs here).

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_RST_STREAM, H2_SETTINGS, H2_PING, H2_GOAWAY, H2_WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
H2_END_STREAM, H2_ACK, H2_END_HEADERS, H2_PADDED, H2_PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
# HPACK's static table entries for :status, and the Huffman codes of the digits
# (RFC 7541, appendices A and B): enough to read any status.
H2_STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
HUFFMAN_DIGITS = {
    "00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
    "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9",
}  # fmt: skip


def backend_protocols(rendered: Rendered) -> dict[str, str]:
    """The backend-protocol of each of the chart's Ingresses, by name."""
    return {
        ingress["metadata"]["name"]: ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"]
        for ingress in rendered.all("Ingress")
    }


def backend_socket(address: str, protocol: str, ca_cert: Path | None) -> socket.socket:
    """A connection to the server as ingress-nginx opens it for `protocol`."""
    host, port = address.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    if protocol in ("HTTP", "GRPC"):
        return raw
    assert ca_cert is not None, f"backend-protocol {protocol} needs the server's TLS"
    context = ssl.create_default_context(cafile=str(ca_cert))
    if protocol == "GRPCS":
        context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(raw, server_hostname=host)
    assert tls.selected_alpn_protocol() == ("h2" if protocol == "GRPCS" else None), tls.selected_alpn_protocol()
    return tls


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"the server closed the connection ({len(data)} of {size} bytes read)")
        data += chunk
    return data


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_string(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 127, "long strings need HPACK's multi-byte lengths"
    return bytes([len(raw)]) + raw


def hpack_integer(data: bytes, at: int, prefix_bits: int) -> tuple[int, int]:
    """An HPACK integer with an N-bit prefix at data[at]: (value, next index)."""
    limit = (1 << prefix_bits) - 1
    value = data[at] & limit
    at += 1
    if value < limit:
        return value, at
    shift = 0
    while True:
        byte = data[at]
        at += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def h2_status(block: bytes) -> int:
    """The :status of a response's header block (the server sends it first)."""
    at = 0
    while block[at] & 0xE0 == 0x20:  # dynamic table size updates
        _, at = hpack_integer(block, at, 5)
    first = block[at]
    if first & 0x80:  # indexed
        index, _ = hpack_integer(block, at, 7)
        return H2_STATIC_STATUS[index]
    # A literal whose name is :status (static index 8) and whose value is 3 digits.
    name_index, at = hpack_integer(block, at, 6 if first & 0x40 else 4)
    assert name_index in H2_STATIC_STATUS, f"the first header is not :status: {block[:16].hex()}"
    huffman = bool(block[at] & 0x80)
    length, at = hpack_integer(block, at, 7)
    value = block[at : at + length]
    if not huffman:
        return int(value)
    bits, digits, code = "".join(f"{byte:08b}" for byte in value), "", ""
    for bit in bits:
        code += bit
        if code in HUFFMAN_DIGITS:
            digits, code = digits + HUFFMAN_DIGITS[code], ""
    assert set(code) <= {"1"} and len(digits) == 3, f"not a status: {value.hex()}"  # EOS padding is 1s
    return int(digits)


def h2_request(
    sock: socket.socket, method: str, path: str, authority: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One request on a fresh HTTP/2 connection, as grpc_pass sends it: the
    response's status and body. The connection is closed afterwards."""
    scheme = "https" if isinstance(sock, ssl.SSLSocket) else "http"
    fields = [(":method", method), (":scheme", scheme), (":path", path), (":authority", authority)]
    fields += [(name.lower(), value) for name, value in headers.items()]
    if body:
        fields.append(("content-length", str(len(body))))
    # Literal header fields without indexing, new names, no Huffman.
    block = b"".join(b"\x00" + hpack_string(name) + hpack_string(value) for name, value in fields)
    out = H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0)
    out += h2_frame(H2_HEADERS, H2_END_HEADERS | (0 if body else H2_END_STREAM), 1, block)
    if body:
        assert len(body) <= 16384, "one DATA frame of the default size"
        out += h2_frame(H2_DATA, H2_END_STREAM, 1, body)
    status, data = None, b""
    with sock:
        sock.sendall(out)
        while True:
            head = read_exactly(sock, 9)
            length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
            stream = int.from_bytes(head[5:], "big") & 0x7FFFFFFF
            payload = read_exactly(sock, length)
            if kind == H2_SETTINGS and not flags & H2_ACK:
                sock.sendall(h2_frame(H2_SETTINGS, H2_ACK, 0))
            elif kind == H2_PING and not flags & H2_ACK:
                sock.sendall(h2_frame(H2_PING, H2_ACK, 0, payload))
            elif kind == H2_GOAWAY:
                raise ConnectionError(f"GOAWAY from the server: {payload.hex()}")
            elif stream != 1:
                continue
            elif kind == H2_RST_STREAM:
                raise ConnectionError(f"the server reset the stream: {payload.hex()}")
            elif kind == H2_HEADERS:
                if flags & H2_PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & H2_PRIORITY:
                    payload = payload[5:]
                assert flags & H2_END_HEADERS, "the response's headers do not fit one frame"
                if status is None:
                    status = h2_status(payload)
                if flags & H2_END_STREAM:
                    break
            elif kind == H2_DATA:
                if flags & H2_PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                data += payload
                if length:
                    increment = length.to_bytes(4, "big")
                    for window in (0, 1):  # the connection's and the stream's
                        sock.sendall(h2_frame(H2_WINDOW_UPDATE, 0, window, increment))
                if flags & H2_END_STREAM:
                    break
    assert status is not None, "no response headers"
    return status, data


def http1_request(
    address: str, protocol: str, ca_cert: Path | None, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request as proxy_pass sends it (over TLS without ALPN for
    HTTPS): the status, the headers (names in lowercase) and the body."""
    sock = backend_socket(address, protocol, ca_cert)
    connection = http.client.HTTPConnection(address, timeout=10)
    connection.sock = sock  # http.client would offer ALPN http/1.1; nginx offers none
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def grpc_web_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """A gRPC-Web response body: its messages and its trailers."""
    messages, trailers, at = [], {}, 0
    while at < len(body):
        flags, length = body[at], int.from_bytes(body[at + 1 : at + 5], "big")
        payload = body[at + 5 : at + 5 + length]
        at += 5 + length
        if flags & 0x80:
            for line in payload.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    trailers[name.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


def proto_string(field: int, text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([field << 3 | 2, len(raw)]) + raw


@dataclass
class DashboardBackend:
    """The chart's server with what its Ingresses need to reach it."""

    address: str
    ca_cert: Path | None
    page_protocol: str  # the dashboard's Ingress
    calls_protocol: str  # the main Ingress
    user: str
    password: str

    @property
    def origin(self) -> str:
        # The page's origin: the Ingress' host, which nginx passes on as the
        # request's Host (:authority); here the server's own address.
        return f"{'https' if self.ca_cert else 'http'}://{self.address}"

    def grpc_web_call(
        self, path: str, message: bytes = b"", password: str | None = None
    ) -> tuple[list[bytes], dict[str, str]]:
        """A call of the page, as the main Ingress passes it on (HTTP/2)."""
        pair = base64.b64encode(f"{self.user}:{password or self.password}".encode()).decode()
        headers = {
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "accept": "application/grpc-web+proto",
            "authorization": f"Basic {pair}",
            "x-skypilot-api-version": "1",
            "origin": self.origin,
            "referer": f"{self.origin}/dashboard/",
        }
        frame = b"\x00" + len(message).to_bytes(4, "big") + message
        sock = backend_socket(self.address, self.calls_protocol, self.ca_cert)
        status, body = h2_request(sock, "POST", path, self.address, headers, frame)
        assert status == 200, f"{path}: HTTP {status} {body[:200]!r}"
        return grpc_web_frames(body)


def start_dashboard_backend(sky, processes, tmp_path, server_tls: bool) -> tuple[DashboardBackend, ServerProcess]:
    rendered = render("ingress", values_files=["tls.yaml"] if server_tls else [])
    protocols = backend_protocols(rendered)
    fullname = rendered.statefulset["metadata"]["name"]
    page_protocol, calls_protocol = protocols[f"{fullname}-dashboard"], protocols[fullname]
    if server_tls:
        chart_server, server, address, ca_cert = start_tls_server(sky, processes, tmp_path, rendered)
    else:
        chart_server = ChartServer(rendered, sky, tmp_path)
        server = processes.server(chart_server.command, chart_server.env)
        address, ca_cert = server.wait_serving(), None
    user, password = chart_server.admin()
    return DashboardBackend(address, ca_cert, page_protocol, calls_protocol, user, password), server


@pytest.mark.parametrize("server_tls", [False, True], ids=["plaintext", "tls"])
def test_the_server_serves_the_page_as_the_dashboard_ingress_asks(server_tls, sky, processes, tmp_path):
    backend, _ = start_dashboard_backend(sky, processes, tmp_path, server_tls)
    assert backend.page_protocol == ("HTTPS" if server_tls else "HTTP")
    files = {
        "/dashboard/": "text/html",
        "/dashboard/index.html": "text/html",
        "/dashboard/app.js": "text/javascript",
        "/dashboard/app.css": "text/css",
    }
    for path, content_type in files.items():
        status, headers, body = http1_request(
            backend.address, backend.page_protocol, backend.ca_cert, "GET", path, {"Host": backend.address}
        )
        assert status == 200, f"GET {path} over {backend.page_protocol}: {status} {body[:200]!r}"
        assert headers["content-type"].startswith(content_type), (path, headers)
        assert body, path
    # `/dashboard` (the Prefix path itself) redirects to the page, without credentials.
    status, headers, _ = http1_request(
        backend.address, backend.page_protocol, backend.ca_cert, "GET", "/dashboard", {"Host": backend.address}
    )
    assert (status, headers.get("location")) == (308, "/dashboard/"), (status, headers)


@pytest.mark.parametrize("server_tls", [False, True], ids=["plaintext", "tls"])
def test_the_server_answers_the_pages_calls_as_the_grpc_ingress_passes_them(server_tls, sky, processes, tmp_path):
    backend, _ = start_dashboard_backend(sky, processes, tmp_path, server_tls)
    assert backend.calls_protocol == ("GRPCS" if server_tls else "GRPC")

    # A unary call of each of the page's path families.
    messages, trailers = backend.grpc_web_call("/skypilot.v1.UserService/WhoAmI")
    assert trailers.get("grpc-status") == "0", trailers
    assert len(messages) == 1 and backend.user.encode() in messages[0], messages
    _, trailers = backend.grpc_web_call("/google.longrunning.Operations/ListOperations")
    assert trailers.get("grpc-status") == "0", trailers
    # The server checks the credentials of gRPC-Web calls like any other's
    # (its refusal is trailers-only: the status is in the response's headers).
    refused, trailers = backend.grpc_web_call("/skypilot.v1.UserService/WhoAmI", password=backend.password + "-wrong")
    assert not refused and trailers.get("grpc-status") != "0", (refused, trailers)

    # A server stream (the page watches requests and follows logs): the
    # request of a `sky check` watched to its end.
    home = processes.home("client")
    scheme = "https" if server_tls else "http"
    env = {"SSL_CERT_FILE": str(backend.ca_cert)} if backend.ca_cert else {}
    if backend.ca_cert:
        (home / ".sky").mkdir()
        (home / ".sky" / "skyconfig.yaml").write_text(f"api_server:\n  ca_cert: {backend.ca_cert}\n")
    endpoint = admin_url(scheme, backend.user, backend.password, backend.address)
    login_and_check(sky, home, ["-e", endpoint], backend.user, **env)
    check = run_sky(sky, home, "check")
    assert check.returncode == 0, f"sky check failed:\n{check.stdout}\n{check.stderr}"
    listed, trailers = backend.grpc_web_call("/google.longrunning.Operations/ListOperations")
    assert trailers.get("grpc-status") == "0", trailers
    names = re.findall(rb"operations/[0-9a-f-]{36}", b"".join(listed))
    assert names, listed
    request = proto_string(1, names[0].decode())
    watched, trailers = backend.grpc_web_call("/skypilot.v1.RequestService/WatchOperation", request)
    assert trailers.get("grpc-status") == "0", trailers
    assert watched and all(names[0] in message for message in watched), watched
    logs, trailers = backend.grpc_web_call("/skypilot.v1.RequestService/StreamLogs", request)
    assert trailers.get("grpc-status") == "0", trailers
    assert logs, "the log of sky check"


@pytest.mark.parametrize("server_tls", [False, True], ids=["plaintext", "tls"])
def test_the_grpc_ingress_alone_still_serves_the_page(server_tls, sky, processes, tmp_path):
    # With ingress.dashboard.enabled=false, or for GET / (the redirect), the
    # main Ingress passes the browser's GETs on as HTTP/2.
    backend, _ = start_dashboard_backend(sky, processes, tmp_path, server_tls)
    sock = backend_socket(backend.address, backend.calls_protocol, backend.ca_cert)
    status, body = h2_request(sock, "GET", "/dashboard/", backend.address, {"accept": "text/html"})
    assert status == 200 and body.lower().startswith(b"<!doctype html>"), (status, body[:100])
    sock = backend_socket(backend.address, backend.calls_protocol, backend.ca_cert)
    status, _ = h2_request(sock, "GET", "/", backend.address, {"accept": "text/html"})
    assert status == 308, status
    sock = backend_socket(backend.address, backend.calls_protocol, backend.ca_cert)
    status, body = h2_request(sock, "GET", "/dashboard/app.js", backend.address, {})
    assert status == 200 and len(body) > 65535, "a file larger than HTTP/2's initial window"

    # And gRPC clients keep working on the same port.
    credentials = grpc.ssl_channel_credentials(root_certificates=backend.ca_cert.read_bytes()) if server_tls else None
    assert health(backend.address, "", credentials) == health_pb2.HealthCheckResponse.SERVING


def server_command(rendered: Rendered) -> tuple[str, ...]:
    """The subcommand the chart runs (`api start`): the args before the first flag."""
    args = rendered.args
    first_flag = next((i for i, arg in enumerate(args) if arg.startswith("-")), len(args))
    return tuple(args[:first_flag])


def chart_flags() -> list[tuple[str, str]]:
    """(subcommand, flag) of every flag the chart passes, in any variant."""
    found = set()
    for variant in VARIANTS:
        rendered = render_variant(variant)
        command = " ".join(server_command(rendered))
        found |= {(command, arg.split("=", 1)[0]) for arg in rendered.args if arg.startswith("--")}
    return sorted(found)


def chart_settings() -> list[str]:
    names = set()
    for variant in VARIANTS:
        names |= {name for name in render_variant(variant).environment() if name.startswith("SKYPILOT_")}
    return sorted(names)


@pytest.mark.parametrize(("command", "flag"), chart_flags())
def test_the_server_knows_every_flag_the_chart_passes(command, flag, sky):
    options = command_help(sky, tuple(command.split())).options
    assert flag in options, f"the chart passes {flag}, which `sky {command} --help` does not list:\n{sorted(options)}"


@pytest.mark.parametrize("name", chart_settings())
def test_the_server_knows_every_setting_the_chart_gives_it(name, sky, processes, tmp_path):
    if name in ENVIRONMENT_ONLY_FILE_SETTINGS:
        # Known to the server when a file it cannot read stops a first start
        # and the message names the setting.
        data_dir = tmp_path / "data"
        command = [sky, "api", "start", "--foreground", "--deploy", "--host", "127.0.0.1", "--port", "0",
                   "--data-dir", str(data_dir), "--log-format", "json"]  # fmt: skip
        env = client_env(processes.home("server"), **{name: str(tmp_path / "not-mounted" / "credentials")})
        server = processes.server(command, env)
        code = server.wait_refusal(f"with {name} naming a file that does not exist")
        assert code != 0 and name in server.log(), server.log()
        return
    command = server_command(render_variant("default"))
    listed = command_help(sky, command).env
    usage = f"sky {' '.join(command)} --help"
    assert name in listed, f"the chart sets {name}, which `{usage}` does not list: {sorted(listed)}"


def test_jobs_do_not_see_the_initial_credentials(sky, processes, tmp_path):
    # Jobs run in the server's pod only when the admin turns the local infra on.
    rendered = render_variant("shared-server-identity")
    assert rendered.environment()["SKYPILOT_LOCAL_INFRA"] == "shared-server-identity"
    chart_server = ChartServer(rendered, sky, tmp_path)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    user, password = chart_server.admin()
    home = processes.home("client")
    login_and_check(sky, home, ["-e", admin_url("http", user, password, address)], user)
    task = tmp_path / "task.yaml"
    task.write_text(
        "resources:\n  cpus: 0.5\n"
        "run: |\n"
        '  echo "basic-auth=${SKYPILOT_INITIAL_BASIC_AUTH:-unset}"\n'
        '  echo "token=${SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN:-unset}"\n'
    )
    try:
        launch = run_sky(sky, home, "launch", "-c", "chart-env", str(task), "-y")
        assert launch.returncode == 0, f"sky launch failed:\n{launch.stdout}\n{launch.stderr}"
        output = launch.stdout + launch.stderr
        assert "basic-auth=" in output, output
        assert password not in output, "a job read the initial admin's password from its environment"
        assert "basic-auth=unset" in output and "token=unset" in output, output
    finally:
        down = run_sky(sky, home, "down", "-a", "-y")
        assert down.returncode == 0, f"sky down failed:\n{down.stdout}\n{down.stderr}"


def test_the_default_server_runs_no_jobs_in_its_pod(sky, processes, tmp_path):
    """With the chart's default values, jobs would run in the server's pod as the
    server's own user: the local infra is off, says why, and refuses launches."""
    rendered = render_variant("default")
    chart_server = ChartServer(rendered, sky, tmp_path)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    user, password = chart_server.admin()
    home = processes.home("client")
    login_and_check(sky, home, ["-e", admin_url("http", user, password, address)], user)

    check = run_sky(sky, home, "check")
    assert check.returncode == 0, f"sky check failed:\n{check.stdout}\n{check.stderr}"
    lines = [line.strip() for line in check.stdout.splitlines()]
    assert "Local: disabled" in lines, check.stdout
    assert "server.localInfra" in check.stdout, "sky check must say how the admin turns the local infra on"

    markers = tmp_path / "markers"
    markers.mkdir()
    task = tmp_path / "task.yaml"
    task.write_text(
        "resources:\n  cpus: 0.5\n"
        f"setup: touch {markers}/setup-ran\n"
        f"run: touch {markers}/run-ran\n"
    )
    try:
        launch = run_sky(sky, home, "launch", "-c", "chart-off", str(task), "-y")
        output = launch.stdout + launch.stderr
        assert launch.returncode != 0, f"sky launch ran a job in the server's pod:\n{output}"
        assert "server.localInfra" in output and "--local-infra" in output, output
        status = run_sky(sky, home, "status", "-u")
        assert status.returncode == 0, f"sky status failed:\n{status.stdout}\n{status.stderr}"
        assert "chart-off" not in status.stdout, f"a refused launch left a cluster:\n{status.stdout}"
        time.sleep(0.5)  # a job that had started anyway would have touched its marker by now
        assert not list(markers.iterdir()), "the task ran although the launch was refused"
        clusters = chart_server.data_dir / "clusters"
        assert not clusters.exists() or not list(clusters.iterdir()), "a refused launch made a cluster folder"
    finally:
        down = run_sky(sky, home, "down", "-a", "-y")
        assert down.returncode == 0, f"sky down failed:\n{down.stdout}\n{down.stderr}"


SSH_DIR = "/etc/skypilot/ssh"
SSH_SECRET = "team-ssh-node-pools"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback TCP port nothing listens on: it stays bound, without
    listening, for the whole test, so connections to it are refused and no
    other program can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def make_private_key(directory: Path) -> str:
    """A new ed25519 private key in OpenSSH's format, written to directory/id_ed25519."""
    directory.mkdir()
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    (directory / "id_ed25519").write_bytes(key)
    return key.decode()


def ssh_chart_server(sky, tmp_path, pools: str, private_key: str) -> ChartServer:
    """The chart's server with the Secret of `ssh.nodePoolsSecret` holding
    `pools` (where {dir} stands for the Secret's folder) and the key lab-key."""
    rendered = render_variant("ssh-node-pools")
    assert rendered.environment()["SKYPILOT_SSH_NODE_POOLS"] == f"{SSH_DIR}/ssh_node_pools.yaml"
    # In the pod the pool file names the keys under SSH_DIR; here that folder
    # is a local directory.
    local_dir = ChartServer.mount_dirs(rendered, tmp_path)[SSH_DIR]
    secret = {"ssh_node_pools.yaml": pools.format(dir=local_dir), "lab-key": private_key}
    chart_server = ChartServer(rendered, sky, tmp_path, {SSH_SECRET: secret})
    assert chart_server.local_path(f"{SSH_DIR}/lab-key") == str(local_dir / "lab-key")
    assert Path(chart_server.env["SKYPILOT_SSH_NODE_POOLS"]) == local_dir / "ssh_node_pools.yaml"
    assert (local_dir / "lab-key").read_text() == private_key
    return chart_server


def test_the_charts_server_reads_its_ssh_node_pools_from_the_mounted_secret(sky, processes, tmp_path, closed_port):
    private_key = make_private_key(tmp_path / "key")
    key_body = [line for line in private_key.splitlines() if line and not line.startswith("-----")]
    port = closed_port
    pools = (
        "lab:\n  user: ubuntu\n  identity_file: {dir}/lab-key\n"
        f"  hosts:\n    - ip: 127.0.0.1\n      port: {port}\n"
    )
    chart_server = ssh_chart_server(sky, tmp_path, pools, private_key)
    chart_server.assert_no_secret_in_env(private_key, *key_body)
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    user, password = chart_server.admin()
    home = processes.home("client")
    login_and_check(sky, home, ["-e", admin_url("http", user, password, address)], user)

    # The server knows the pool and, brought up, tries its host (nothing
    # listens there): the pool stays down, saying why.
    up = run_sky(sky, home, "ssh", "up", "--infra", "lab")
    assert up.returncode != 0, f"sky ssh up succeeded:\n{up.stdout}\n{up.stderr}"
    (line,) = [line for line in up.stdout.splitlines() if f"ubuntu@127.0.0.1:{port}" in line]
    assert "unreachable" in line, line
    assert "0 of 1 hosts ready" in up.stdout + up.stderr, up.stdout + up.stderr
    check = run_sky(sky, home, "check", "ssh")
    assert check.returncode == 0, f"sky check failed:\n{check.stdout}\n{check.stderr}"
    assert "ssh/lab: disabled" in check.stdout and "sky ssh up" in check.stdout, check.stdout
    # SSH state (pinned host keys, control sockets) lives in the data dir.
    assert (chart_server.data_dir / "ssh").is_dir()
    output = up.stdout + up.stderr + check.stdout + check.stderr + server.log()
    assert not any(secret in output for secret in key_body), "the private key must not be shown or logged"


def test_a_bad_pool_file_in_the_secret_stops_the_server(sky, processes, tmp_path):
    pools = (
        "lab:\n  user: ubuntu\n  identity_file: {dir}/lab-key\n"
        "  hosts:\n    - 10.0.0.5\n    - ip: 10.0.0.6\n      port: 0\n"
    )
    chart_server = ssh_chart_server(sky, tmp_path, pools, "not a key\n")
    server = processes.server(chart_server.command, chart_server.env)
    code = server.wait_refusal("with a bad SSH node pools file")
    assert code != 0, server.log()
    server.stop()
    # The message names the pool, the host and the field, and the file.
    assert "lab" in server.log() and "host 2: field `port`" in server.log(), server.log()
    assert chart_server.env["SKYPILOT_SSH_NODE_POOLS"] in server.log(), server.log()


SLURM_DIR = "/etc/skypilot/slurm"
SLURM_SECRET = "team-slurm-clusters"


def slurm_chart_server(sky, tmp_path, config: str, private_key: str) -> ChartServer:
    """The chart's server with the Secret of `slurm.configSecret` holding the
    Slurm configuration `config` (where {dir} stands for the Secret's folder)
    and the key hpc-key."""
    rendered = render_variant("slurm-clusters")
    assert rendered.environment()["SKYPILOT_SLURM_CONFIG"] == f"{SLURM_DIR}/config"
    # In the pod the IdentityFile lines name the keys under SLURM_DIR; here
    # that folder is a local directory.
    local_dir = ChartServer.mount_dirs(rendered, tmp_path)[SLURM_DIR]
    secret = {"config": config.format(dir=local_dir), "hpc-key": private_key}
    chart_server = ChartServer(rendered, sky, tmp_path, {SLURM_SECRET: secret})
    assert chart_server.local_path(f"{SLURM_DIR}/hpc-key") == str(local_dir / "hpc-key")
    assert Path(chart_server.env["SKYPILOT_SLURM_CONFIG"]) == local_dir / "config"
    assert (local_dir / "hpc-key").read_text() == private_key
    return chart_server


def test_the_charts_server_reads_its_slurm_clusters_from_the_mounted_secret(sky, processes, tmp_path, closed_port):
    private_key = make_private_key(tmp_path / "key")
    key_body = [line for line in private_key.splitlines() if line and not line.startswith("-----")]
    port = closed_port
    config = (
        "# the team's Slurm cluster\n"
        "Host hpc\n"
        "    HostName 127.0.0.1\n"
        f"    Port {port}\n"
        "    User alice\n"
        "    IdentityFile {dir}/hpc-key\n"
    )
    chart_server = slurm_chart_server(sky, tmp_path, config, private_key)
    chart_server.assert_no_secret_in_env(private_key, *key_body)
    # The server contacts no login node to start.
    server = processes.server(chart_server.command, chart_server.env)
    address = server.wait_serving()
    user, password = chart_server.admin()
    home = processes.home("client")
    login_and_check(sky, home, ["-e", admin_url("http", user, password, address)], user)

    # The server knows the cluster and tries its login node (nothing listens
    # there): the cluster is disabled, saying why.
    check = run_sky(sky, home, "check", "slurm")
    assert check.returncode == 0, f"sky check failed:\n{check.stdout}\n{check.stderr}"
    assert "slurm/hpc: disabled" in check.stdout, check.stdout
    assert f"alice@127.0.0.1:{port} is unreachable" in check.stdout, check.stdout
    # Slurm state (pinned host keys, control sockets) lives in the data dir.
    assert (chart_server.data_dir / "slurm" / "ssh").is_dir()
    output = check.stdout + check.stderr + server.log()
    assert not any(secret in output for secret in key_body), "the private key must not be shown or logged"


def test_a_bad_slurm_configuration_in_the_secret_stops_the_server(sky, processes, tmp_path):
    config = "Host hpc\n    HostName login.hpc.example.com\n    Port 0\n    IdentityFile {dir}/hpc-key\n"
    chart_server = slurm_chart_server(sky, tmp_path, config, "not a key\n")
    server = processes.server(chart_server.command, chart_server.env)
    code = server.wait_refusal("with a bad Slurm configuration")
    assert code != 0, server.log()
    server.stop()
    # The message names the line and the field, and the file.
    assert 'line 3: Port "0" is not a port' in server.log(), server.log()
    assert chart_server.env["SKYPILOT_SLURM_CONFIG"] in server.log(), server.log()
