"""pytest fixtures around `skypilot_client.testing.LocalServer`.

Enable them in a conftest.py with
``pytest_plugins = ["skypilot_client.pytest_plugin"]``:

* ``sky_server`` (session): a local API server;
* ``sky_deploy_server`` (session): a deployed server requiring credentials
  (``.credentials`` is the admin's (username, password)), whose local infra
  is turned on (``--local-infra shared-server-identity``) so tests can launch
  jobs on it;
* ``sky_client``: a `Client` of ``sky_server``, closed after the test;
* ``cluster_name``: a fresh cluster name, torn down after the test if it exists.

Every server is stopped, and its clusters torn down, even when tests fail.
"""

from __future__ import annotations

import uuid
from typing import Iterator

import grpc
import pytest

from .client import Client
from .errors import SkyError
from .testing import LocalServer


@pytest.fixture(scope="session")
def sky_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def sky_deploy_server() -> Iterator[LocalServer]:
    # Tests of auth launch jobs on it: its local infra is on, shared with the server's identity.
    with LocalServer(deploy=True, local_infra="shared-server-identity") as server:
        yield server


@pytest.fixture
def sky_client(sky_server: LocalServer) -> Iterator[Client]:
    with sky_server.client() as client:
        yield client


@pytest.fixture
def cluster_name(sky_server: LocalServer) -> Iterator[str]:
    name = f"py-{uuid.uuid4().hex[:8]}"
    yield name
    with sky_server.client(retry_unavailable_for=5.0) as client:
        try:
            client.down(name).result(timeout=60)
        except SkyError as err:
            if err.code != grpc.StatusCode.NOT_FOUND:
                raise
