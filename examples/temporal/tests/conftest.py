"""Test set-up: real API servers, and a busy-cluster gate."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(EXAMPLE))

# Nothing may touch the real ~/.sky.
_HOME = tempfile.TemporaryDirectory(prefix="sky-temporal-test-")
os.environ["HOME"] = _HOME.name
for _name in ("SKYPILOT_API_SERVER_ENDPOINT", "SKYPILOT_SERVICE_ACCOUNT_TOKEN"):
    os.environ.pop(_name, None)

pytest_plugins = ["skypilot_client.pytest_plugin"]

#: Set by tests that start Temporal's Rust runtime (see pytest_unconfigure).
TEMPORAL_RUNTIME_USED = pytest.StashKey[bool]()
_EXIT_STATUS: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Once Temporal's Rust runtime has run in this process, the interpreter
    may abort while finalizing ("PyGILState_Release: thread state ... must be
    current", temporalio/sdk-python#300) after every test passed: leave with
    pytest's own exit status instead, skipping that finalization. Everything
    the tests started (servers, clusters) is stopped by then."""
    if not config.stash.get(TEMPORAL_RUNTIME_USED, False):
        return
    _HOME.cleanup()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS.get("status", 1))


# Helpers and the `gate` fixture shared with the other example suite.
sys.path.insert(0, str(EXAMPLE.parent))
from sky_test_support import Gate, gate, job_status, request_state, wait_until  # noqa: E402, F401
