"""SSH node pools and cluster nodes through the clients, against a local API
server that has no SSH node pools."""

from __future__ import annotations

from typing import Awaitable, Callable

import grpc
import pytest

from skypilot_client import AsyncOperation, Client, ErrorReason, Operation, SkyError, Task, v1
from skypilot_client.testing import LocalServer


def assert_no_ssh_node_pools(error: SkyError, what: str) -> None:
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"), what
    assert error.error_reason == ErrorReason.ERROR_REASON_FAILED_PRECONDITION, what
    assert "no SSH node pools" in error.message and "ssh_node_pools.yaml" in error.message, (what, error.message)


def test_ssh_up_and_down_without_pools_fail_with_failed_precondition(sky_client: Client) -> None:
    calls: dict[str, Callable[[], Operation]] = {
        "up, every pool": lambda: sky_client.ssh_up(),
        "up, one pool": lambda: sky_client.ssh_up(infra="ssh/lab"),
        "down, every pool": lambda: sky_client.ssh_down(),
        "down, an unknown pool": lambda: sky_client.ssh_down(infra="gpus"),
    }
    for what, call in calls.items():
        with pytest.raises(SkyError) as info:
            call().result(timeout=60)
        assert_no_ssh_node_pools(info.value, what)


def test_status_refresh_reaches_the_node_of_a_local_cluster(sky_client: Client, cluster_name: str) -> None:
    sky_client.launch(Task(run="true", cpus=0.5), cluster_name).result(timeout=60)
    for refresh in (False, True):
        (cluster,) = sky_client.status([cluster_name], refresh=refresh)
        assert cluster.status == v1.ClusterStatus.CLUSTER_STATUS_UP, refresh
        (node,) = cluster.nodes
        assert (node.rank, node.host, node.reachable, node.detail) == (0, "local", True, ""), refresh
        assert node.address, refresh
    sky_client.down(cluster_name).result(timeout=60)
    assert sky_client.status([cluster_name], refresh=True) == []


async def test_async_ssh_up_and_down_without_pools_and_status_refresh(
    sky_server: LocalServer, cluster_name: str
) -> None:
    async with sky_server.async_client() as client:
        calls: dict[str, Callable[[], Awaitable[AsyncOperation]]] = {
            "up": lambda: client.ssh_up(),
            "down, an unknown pool": lambda: client.ssh_down(infra="ssh/gpus"),
        }
        for what, call in calls.items():
            with pytest.raises(SkyError) as info:
                await (await call()).result(timeout=60)
            assert_no_ssh_node_pools(info.value, what)

        await (await client.launch(Task(run="true", cpus=0.5), cluster_name)).result(timeout=60)
        (cluster,) = await client.status([cluster_name], refresh=True)
        (node,) = cluster.nodes
        assert (node.host, node.reachable) == ("local", True)
        await (await client.down(cluster_name)).result(timeout=60)
        assert await client.status([cluster_name], refresh=True) == []
