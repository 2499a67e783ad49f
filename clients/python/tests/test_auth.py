"""Basic and bearer credentials against a deployed (`--deploy`) server."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from skypilot_client import Client, SkyError, Task, v1
from skypilot_client.testing import LocalServer


def test_calls_without_credentials_are_refused(sky_deploy_server: LocalServer) -> None:
    with Client(sky_deploy_server.endpoint, token="", retry_unavailable_for=0) as anonymous:
        with pytest.raises(SkyError) as info:
            anonymous.server_info()
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")

    with Client(sky_deploy_server.endpoint, username="admin", password="wrong") as wrong:
        with pytest.raises(SkyError) as info:
            wrong.whoami()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_basic_credentials_in_the_url_or_as_arguments(sky_deploy_server: LocalServer) -> None:
    user, password = sky_deploy_server.credentials or ("", "")
    with Client(sky_deploy_server.endpoint_with_credentials) as from_url:
        me = from_url.whoami()
        assert (me.name, me.role) == (user, v1.Role.ROLE_ADMIN)
        assert from_url.server_info().mode == v1.ServerMode.SERVER_MODE_DEPLOY
        assert password not in from_url.endpoint
    with Client(sky_deploy_server.endpoint, username=user, password=password) as from_args:
        assert from_args.whoami().name == user


def test_service_account_tokens(
    sky_deploy_server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    with sky_deploy_server.client() as admin:
        users = admin.stub(v1.UserServiceStub)
        created = users.CreateToken(v1.CreateTokenRequest(name="ci"))
        secret = created.secret
        assert secret.startswith("sky_")

        with Client(sky_deploy_server.endpoint, token=secret) as with_token:
            assert with_token.whoami().name == "admin"
            # A token can run the main flow too.
            op = with_token.launch(Task(run="echo via token", cpus=0.5, name="t"), "py-token", dryrun=True)
            assert op.result(timeout=60).job_id == 0

        # From the environment, then from the config file.
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("SKYPILOT_SERVICE_ACCOUNT_TOKEN", secret)
        monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", sky_deploy_server.endpoint)
        with Client() as from_env:
            assert from_env.whoami().name == "admin"
        monkeypatch.delenv("SKYPILOT_SERVICE_ACCOUNT_TOKEN")
        (tmp_path / ".sky").mkdir()
        (tmp_path / ".sky" / "skyconfig.yaml").write_text(f"api_server:\n  service_account_token: {secret}\n")
        with Client() as from_config:
            assert from_config.whoami().name == "admin"

        users.RevokeToken(v1.RevokeTokenRequest(token_id=created.token.token_id))
        with Client(sky_deploy_server.endpoint, token=secret) as revoked:
            with pytest.raises(SkyError) as info:
                revoked.whoami()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_second_user_and_permissions(sky_deploy_server: LocalServer) -> None:
    with sky_deploy_server.client() as admin:
        users = admin.stub(v1.UserServiceStub)
        users.CreateUser(v1.CreateUserRequest(name="alice", password="alice-pw", role=v1.Role.ROLE_USER))
        launched = admin.launch(Task(run="true", cpus=0.5), "py-admins").result(timeout=60)
        assert launched.cluster_name == "py-admins"
    with Client(sky_deploy_server.endpoint, username="alice", password="alice-pw") as alice:
        assert alice.whoami().role == v1.Role.ROLE_USER
        assert [c.name for c in alice.status(all_users=True)] == ["py-admins"]
        with pytest.raises(SkyError) as info:
            alice.down("py-admins")
        assert (info.value.code, info.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


def test_a_deployment_without_the_local_infra_refuses_launches() -> None:
    # A real deployment's default: jobs would run as the server's own user.
    with LocalServer(deploy=True, local_infra="off") as server, server.client() as admin:
        check = admin.check().result(timeout=60)
        (local,) = [infra for infra in check.infras if infra.name == "local"]
        assert not local.enabled and "server.localInfra" in local.reason
        with pytest.raises(SkyError) as info:
            admin.launch(Task(run="true", cpus=0.5), "py-no-local").result(timeout=60)
        assert (info.value.code, info.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION")
        assert "--local-infra shared-server-identity" in info.value.message
        assert admin.status(all_users=True) == []


def test_local_infra_must_be_a_mode_of_the_server() -> None:
    with pytest.raises(ValueError, match="local_infra"):
        LocalServer(deploy=True, local_infra="on")
