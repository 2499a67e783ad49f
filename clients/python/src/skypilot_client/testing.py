"""A real API server for tests: `LocalServer` starts the `sky` binary in a
temporary folder on a free loopback port and stops it again.

>>> from skypilot_client.testing import LocalServer
>>> with LocalServer() as server:                  # or LocalServer(deploy=True)
...     with server.client() as client:
...         print(client.server_info().version)

A deployed test server's local infra is on (``--local-infra
shared-server-identity``, unlike a real deployment's default) so that tests can
launch jobs on it; ``LocalServer(deploy=True, local_infra="off")`` tests one
without it.

The binary is ``$SKY_BIN``, else ``<repo root>/target/debug/sky`` (the repo
root is found above the current folder). The server gets its own ``HOME`` and
data directory, listens on ``127.0.0.1`` with ``--port 0``, and counts as
ready when it logs ``API server is serving``. `stop()` tears down every
cluster (their jobs run as detached processes), after cancelling every
unfinished managed job (whose clusters the server would launch again), then
sends SIGTERM and waits; it raises `ServerError`, naming them, when jobs
could not be cancelled or clusters torn down.

For pytest, ``pytest_plugins = ["skypilot_client.pytest_plugin"]`` in a
conftest.py provides the fixtures ``sky_server``, ``sky_deploy_server``,
``sky_client`` and ``cluster_name``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from urllib.parse import quote
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from . import v1
from .aio import AsyncClient
from .client import Client

SERVING_MESSAGE = "API server is serving"
#: What the server says when its --port is taken.
PORT_IN_USE = "is already in use"
#: The values of ``sky api start --local-infra``.
LOCAL_INFRA_MODES = ("auto", "off", "shared-server-identity", "uid-per-cluster")


def find_repo_root(start: Optional[str] = None) -> Optional[str]:
    """The folder above ``start`` (default: the current one, then this
    package's) holding Cargo.toml and proto/skypilot/v1."""
    candidates = [start or os.getcwd(), os.path.dirname(os.path.abspath(__file__))]
    for folder in candidates:
        folder = os.path.abspath(folder)
        while True:
            if os.path.isfile(os.path.join(folder, "Cargo.toml")) and os.path.isdir(
                os.path.join(folder, "proto", "skypilot", "v1")
            ):
                return folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return None


def find_sky_bin() -> str:
    """``$SKY_BIN``, else ``<repo root>/target/debug/sky``."""
    from_env = os.environ.get("SKY_BIN", "").strip()
    if from_env:
        path = os.path.abspath(os.path.expanduser(from_env))
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"SKY_BIN={from_env} is not an executable file")
        return path
    root = find_repo_root()
    if root is None:
        raise FileNotFoundError("set SKY_BIN to the `sky` binary (no repository root found above this folder)")
    path = os.path.join(root, "target", "debug", "sky")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} does not exist: run `cargo build --bin sky` or set SKY_BIN")
    return path


class ServerError(RuntimeError):
    """The server did not start (or stop) as expected; carries its log."""


class LocalServer:
    """A SkyPilot API server process for tests (a context manager).

    Args:
        deploy: start a team deployment (``--deploy --host 127.0.0.1``) whose
            calls need credentials; the initial admin is ``username`` with
            ``password`` (random unless given).
        local_infra: the server's ``--local-infra``: ``"auto"``, ``"off"`` or
            ``"shared-server-identity"``. Default (None): ``"shared-server-identity"``
            for a deployed server, whose local infra is otherwise off, so that
            tests of auth and of the API can launch jobs on it (every job then
            runs as the server's own user, which is fine for a throwaway test
            server and wrong for a shared one); for a local server, the server's
            own default (on). Pass ``"off"`` to test a deployment without it.
        tls_cert, tls_key: serve TLS; ``endpoint`` is then
            ``https://<tls_hostname>:<port>``.
        sky_bin: the binary (default: `find_sky_bin()`).
        home, data_dir: folders to use (default: a temporary folder, removed by `stop()`).
        env: extra environment variables for the server.
        extra_args: more flags for ``sky api start`` (e.g. ``["--upload-max-mib", "1"]``).
        ready_timeout: seconds to wait for the server to serve.
        stop_timeout: seconds `stop()` waits for the server to exit after SIGTERM.
        down_timeout: seconds `stop()` waits for each cluster's teardown.
    """

    def __init__(
        self,
        *,
        deploy: bool = False,
        local_infra: Optional[str] = None,
        username: str = "admin",
        password: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        tls_hostname: str = "localhost",
        sky_bin: Optional[str] = None,
        home: Optional[str] = None,
        data_dir: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        down_timeout: float = 60.0,
    ) -> None:
        self.deploy = deploy
        if local_infra is None and deploy:
            local_infra = "shared-server-identity"
        if local_infra is not None and local_infra not in LOCAL_INFRA_MODES:
            raise ValueError(f"local_infra must be one of {', '.join(LOCAL_INFRA_MODES)}, got {local_infra!r}")
        self.local_infra = local_infra
        self.username = username
        self.password = password or (secrets.token_urlsafe(12) if deploy else None)
        self.tls_cert, self.tls_key, self.tls_hostname = tls_cert, tls_key, tls_hostname
        self.sky_bin = sky_bin or find_sky_bin()
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        if home is None or data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sky-test-server-")
        root = self._tmp.name if self._tmp else ""
        self.home = home or os.path.join(root, "home")
        self.data_dir = data_dir or os.path.join(root, "data")
        os.makedirs(self.home, exist_ok=True)
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.down_timeout = down_timeout
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        self.address = ""
        self._log: List[str] = []
        self._log_lock = threading.Lock()
        self._reader: Optional[threading.Thread] = None

    # -- what tests use -------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The server's URL, without credentials."""
        if self.tls_cert:
            return f"https://{self.tls_hostname}:{self.port}"
        return f"http://{self.address}"

    @property
    def credentials(self) -> Optional[Tuple[str, str]]:
        """(username, password) of the initial admin of a deployed server."""
        if not self.deploy:
            return None
        return self.username, self.password or ""

    @property
    def endpoint_with_credentials(self) -> str:
        """The URL with the admin's basic credentials (deploy), as the CLI takes it."""
        if not self.deploy:
            return self.endpoint
        scheme, rest = self.endpoint.split("://", 1)
        return f"{scheme}://{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@{rest}"

    @property
    def log(self) -> str:
        """What the server wrote to stderr so far."""
        with self._log_lock:
            return "".join(self._log)

    def client(self, **kwargs: Any) -> Client:
        """A `Client` for this server (with the admin's credentials when deployed)."""
        return Client(self.endpoint, **self._client_kwargs(kwargs))

    def async_client(self, **kwargs: Any) -> AsyncClient:
        """An `AsyncClient` for this server."""
        return AsyncClient(self.endpoint, **self._client_kwargs(kwargs))

    def _client_kwargs(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        if self.deploy and "token" not in kwargs and "username" not in kwargs:
            kwargs.update(username=self.username, password=self.password)
        # No token from the test process's environment or ~/.sky.
        kwargs.setdefault("token", "")
        if self.tls_cert and "ca_cert" not in kwargs:
            kwargs["ca_cert"] = self.tls_cert
        return kwargs

    def cli_env(self) -> Dict[str, str]:
        """Environment for running the `sky` CLI against this server."""
        env = dict(os.environ)
        env.update(HOME=self.home, SKYPILOT_API_SERVER_ENDPOINT=self.endpoint_with_credentials)
        env.pop("SKYPILOT_SERVICE_ACCOUNT_TOKEN", None)
        return env

    def sky(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Runs the `sky` CLI against this server; returns its output."""
        return subprocess.run(
            [self.sky_bin, *args],
            env=self.cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> "LocalServer":
        try:
            return self.start()
        except BaseException:
            self.stop(down=False)
            raise

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> "LocalServer":
        """Starts the server and waits until it serves. On a fixed port (a
        restart) it tries again while another program still holds the port,
        for up to ``ready_timeout`` in all."""
        if self.process is not None and self.process.poll() is None:
            return self
        deadline = time.monotonic() + self.ready_timeout
        while True:
            log_start = len(self._log)
            address = self._spawn(deadline - time.monotonic())
            if address:
                break
            self._kill()
            with self._log_lock:
                attempt = "".join(self._log[log_start:])
            if self.port and PORT_IN_USE in attempt and time.monotonic() < deadline:
                time.sleep(0.1)  # the port is not ours yet: try again shortly
                continue
            raise ServerError(f"the API server did not start within {self.ready_timeout} s:\n{self.log}")
        self.address = address
        self.port = int(self.address.rsplit(":", 1)[1])
        return self

    def _spawn(self, timeout: float) -> str:
        """Runs the server; returns the address it serves on, or "" when it
        exited or did not serve within `timeout` seconds."""
        args = [
            self.sky_bin,
            "api",
            "start",
            "--foreground",
            "--port",
            str(self.port),
            "--data-dir",
            self.data_dir,
            "--log-format",
            "json",
        ]
        env = dict(os.environ)
        # The local infra is what `local_infra` (or `env`) says, not the test machine's setting.
        env.pop("SKYPILOT_LOCAL_INFRA", None)
        env.update(self.extra_env)
        env["HOME"] = self.home
        for name in ("SKYPILOT_API_SERVER_ENDPOINT", "SKYPILOT_SERVICE_ACCOUNT_TOKEN"):
            env.pop(name, None)
        if self.deploy:
            args += ["--deploy", "--host", "127.0.0.1"]
            env["SKYPILOT_INITIAL_BASIC_AUTH"] = f"{self.username}:{self.password}"
        if self.local_infra is not None:
            # Deployed test servers launch jobs to test auth, not isolation, so
            # their local infra is turned on here, explicitly (it is off by default).
            args += ["--local-infra", self.local_infra]
        if self.tls_cert:
            args += ["--tls-cert", self.tls_cert, "--tls-key", self.tls_key or ""]
        args += self.extra_args
        self.process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        ready = threading.Event()
        found: Dict[str, str] = {}
        assert self.process.stderr is not None
        self._reader = threading.Thread(
            target=self._read_log, args=(self.process.stderr, ready, found), name="sky-server-log", daemon=True
        )
        self._reader.start()
        if not ready.wait(max(timeout, 0.0)):
            return ""
        if "address" not in found:  # the server exited: all it wrote is in the log
            self._reader.join(5)
        return found.get("address", "")

    def _read_log(self, stream: IO[bytes], ready: threading.Event, found: Dict[str, str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._log_lock:
                self._log.append(line)
            if not ready.is_set():
                try:
                    fields = json.loads(line).get("fields", {})
                except (ValueError, AttributeError):
                    continue
                if isinstance(fields, dict) and fields.get("message") == SERVING_MESSAGE:
                    found["address"] = str(fields.get("address", ""))
                    ready.set()
        ready.set()  # the server exited: stop waiting
        stream.close()

    def down_all(self) -> List[str]:
        """Cancels every unfinished managed job and tears down every cluster of
        every user; returns the problems met, each naming the managed job or
        the cluster (and its unfinished jobs) left behind."""
        if self.process is None:
            return []
        code = self.process.poll()
        if code is not None:
            return [f"the server exited with code {code} before its clusters were torn down"]
        with self.client(retry_unavailable_for=5.0) as client:
            cancelling = self._cancel_managed_jobs(client)
            try:
                clusters = [cluster.name for cluster in client.status(all_users=True)]
            except Exception as err:  # the server is in trouble: say so, stop anyway
                return cancelling + [f"listing clusters: {err}"]
            failures: Dict[str, str] = {}
            operations = []
            for name in clusters:
                try:
                    operations.append((name, client.down(name)))
                except Exception as err:
                    failures[name] = f"down: {err}"
            for name, operation in operations:
                try:
                    operation.result(timeout=self.down_timeout)
                except Exception as err:
                    failures[name] = f"{operation.name}: {err}"
            try:
                left = [cluster.name for cluster in client.status(all_users=True)]
            except Exception as err:
                return (
                    cancelling
                    + [f"cluster {name}: {failure}" for name, failure in failures.items()]
                    + [f"listing clusters after teardown: {err}"]
                )
            problems = cancelling
            for name in sorted(set(left) | set(failures)):
                problem = f"cluster {name} was not torn down"
                jobs = self._unfinished_jobs(client, name) if name in left else ""
                if jobs:
                    problem += f" (unfinished jobs: {jobs})"
                if name in failures:
                    problem += f": {failures[name]}"
                problems.append(problem)
        return problems

    def _cancel_managed_jobs(self, client: Client) -> List[str]:
        """Cancels every unfinished managed job (their clusters go with them);
        returns the problems met."""
        try:
            if not client.jobs_queue(all_users=True, skip_finished=True, limit=1):
                return []
            client.jobs_cancel(all=True, all_users=True).result(timeout=self.down_timeout)
            left = client.jobs_queue(all_users=True, skip_finished=True)
        except Exception as err:  # the server is in trouble: say so, stop anyway
            return [f"cancelling the managed jobs: {err}"]
        return [
            f"managed job {job.job_id} was not cancelled ({v1.ManagedJobStatus.Name(job.status)}, "
            f"cluster {job.cluster_name or '-'})"
            for job in left
        ]

    @staticmethod
    def _unfinished_jobs(client: Client, cluster: str) -> str:
        try:
            jobs = client.queue(cluster, skip_finished=True, all_users=True)
        except Exception as err:
            return f"unknown, {err}"
        return ", ".join(f"{job.job_id} {v1.JobStatus.Name(job.status)}" for job in jobs)

    def stop(self, *, down: bool = True) -> None:
        """Tears down the clusters (unless ``down=False``), stops the server
        (SIGTERM, then SIGKILL after ``stop_timeout``) and removes the
        temporary folder. Raises `ServerError` naming the clusters and jobs
        left behind when the teardown failed (the server is stopped anyway)."""
        problems: List[str] = []
        try:
            if down:
                problems = self.down_all()
            self.terminate()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
        if problems:
            raise ServerError("the test server's clusters were not all torn down:\n  " + "\n  ".join(problems))

    def restart(self) -> "LocalServer":
        """Stops the server (clusters and jobs keep running) and starts it
        again on the same port with the same data."""
        self.terminate()
        return self.start()

    def terminate(self) -> None:
        """Stops the server process (SIGTERM; SIGKILL after ``stop_timeout``),
        keeping its data, clusters and jobs: `start()` brings it back."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._reader is not None:
            self._reader.join(5)
        self.process = None

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __repr__(self) -> str:
        where = self.endpoint if self.address else "not started"
        return f"LocalServer({where}, deploy={self.deploy}, local_infra={self.local_infra})"
