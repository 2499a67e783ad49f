"""`skypilot_client.testing.LocalServer`, the test server itself: it reports
what its teardown leaves behind, and a restart gets its port back."""

from __future__ import annotations

import pathlib
import socket
import threading
from typing import List

import pytest

from skypilot_client.testing import PORT_IN_USE, LocalServer, ServerError

from _helpers import Gate, eventually


def test_stop_fails_naming_a_cluster_it_could_not_tear_down(tmp_path: pathlib.Path) -> None:
    # The gate's launch holds its cluster, so the teardown queued behind it
    # cannot finish within the server's down_timeout.
    server = LocalServer(down_timeout=1, env={"SKYPILOT_SHUTDOWN_GRACE_SECONDS": "0"}).start()
    process = server.process
    assert process is not None
    try:
        with server.client() as client:
            gate = Gate(client, "held", tmp_path).close()
    except BaseException:
        server.stop(down=False)
        raise
    with pytest.raises(ServerError) as info:
        server.stop()
    assert f"cluster {gate.cluster} was not torn down" in str(info.value), info.value
    # The server is stopped all the same.
    assert server.process is None and process.poll() is not None


def test_a_restart_waits_for_its_port_to_be_free() -> None:
    with LocalServer() as server:
        port = server.port
        server.terminate()
        errors: List[BaseException] = []

        def restart() -> None:
            try:
                server.start()
            except BaseException as err:  # noqa: BLE001 - reported by the test thread
                errors.append(err)

        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            starting = threading.Thread(target=restart)
            starting.start()
            eventually(lambda: PORT_IN_USE in server.log, "the restart to find its port taken")
        starting.join(60)
        assert not starting.is_alive() and errors == []
        assert server.port == port
        with server.client() as client:
            assert client.server_info().api_version == 1
