"""Fixtures: real API servers (skypilot_client.pytest_plugin), and a test
process that reads nothing from the real ~/.sky or SKYPILOT_* variables."""

from __future__ import annotations

import os
import tempfile
from typing import Iterator

import pytest

pytest_plugins = ["skypilot_client.pytest_plugin"]

ISOLATED = ("SKYPILOT_API_SERVER_ENDPOINT", "SKYPILOT_SERVICE_ACCOUNT_TOKEN", "SKYPILOT_API_SERVER_LOCAL_PORT")


@pytest.fixture(scope="session", autouse=True)
def isolated_home() -> Iterator[str]:
    saved = {name: os.environ.get(name) for name in ("HOME",) + ISOLATED}
    with tempfile.TemporaryDirectory(prefix="sky-client-tests-home-") as home:
        os.environ["HOME"] = home
        for name in ISOLATED:
            os.environ.pop(name, None)
        try:
            yield home
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
