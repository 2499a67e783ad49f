"""Endpoint and credential resolution, without a server."""

from __future__ import annotations

import base64
import pathlib

import pytest

from skypilot_client import parse_endpoint, resolve_endpoint
from skypilot_client.endpoint import resolve_connection


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    for name in (
        "SKYPILOT_API_SERVER_ENDPOINT",
        "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
        "SKYPILOT_API_SERVER_LOCAL_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write_config(home: pathlib.Path, text: str) -> None:
    (home / ".sky").mkdir(exist_ok=True)
    (home / ".sky" / "skyconfig.yaml").write_text(text)


def test_local_default_then_config_then_env(monkeypatch: pytest.MonkeyPatch, clean_env: pathlib.Path) -> None:
    assert resolve_endpoint().uri == "http://127.0.0.1:46580"
    monkeypatch.setenv("SKYPILOT_API_SERVER_LOCAL_PORT", "46999")
    assert resolve_endpoint().port == 46999
    write_config(clean_env, "kubernetes: {}\napi_server:\n  endpoint: http://10.1.2.3:30050\n")
    assert resolve_endpoint().uri == "http://10.1.2.3:30050"
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", "https://api.example.com")
    endpoint = resolve_endpoint()
    assert (endpoint.tls, endpoint.port, endpoint.target) == (True, 443, "api.example.com:443")
    assert resolve_endpoint("http://h:1").target == "h:1"


def test_credentials_in_the_url_are_basic_auth() -> None:
    endpoint = parse_endpoint("http://sky%40team:p%40ss@1.2.3.4:30050/")
    assert (endpoint.username, endpoint.password) == ("sky@team", "p@ss")
    assert endpoint.display() == "http://sky@team:****@1.2.3.4:30050"
    assert "p@ss" not in repr(endpoint)
    headers = dict(resolve_connection("http://u:p@h:1").metadata())
    assert headers["x-skypilot-api-version"] == "1"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


def test_tokens_come_from_argument_env_or_config(monkeypatch: pytest.MonkeyPatch, clean_env: pathlib.Path) -> None:
    write_config(clean_env, "api_server:\n  service_account_token: sky_from_config\n")
    assert dict(resolve_connection("http://h:1").metadata())["authorization"] == "Bearer sky_from_config"
    monkeypatch.setenv("SKYPILOT_SERVICE_ACCOUNT_TOKEN", "sky_from_env")
    # A token wins over basic credentials in the URL, as in the CLI.
    assert dict(resolve_connection("http://u:p@h:1").metadata())["authorization"] == "Bearer sky_from_env"
    assert dict(resolve_connection("http://h:1", token="sky_arg").metadata())["authorization"] == "Bearer sky_arg"
    # Credentials passed as arguments are not overridden by the environment.
    explicit = dict(resolve_connection("http://h:1", username="u", password="p").metadata())
    assert explicit["authorization"].startswith("Basic ")


def test_ca_cert_comes_from_the_config(clean_env: pathlib.Path) -> None:
    pem = clean_env / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    write_config(clean_env, f"api_server:\n  ca_cert: {pem}\n")
    connection = resolve_connection("https://h")
    assert connection.ca_cert == str(pem)
    roots = connection.root_certificates()
    assert roots is not None and roots.endswith(pem.read_bytes())


@pytest.mark.parametrize(
    "url, problem",
    [
        ("127.0.0.1:46580", "http://"),
        ("http://host:99999", "port"),
        ("http://:80", "host"),
        ("http://h:1/api", "path"),
        ("http://[::1:80", "]"),
        ("http://:p@h:1", "user name"),
    ],
)
def test_malformed_endpoints_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid API server endpoint") as info:
        parse_endpoint(url)
    assert problem in str(info.value)


def test_ipv6_targets_keep_their_brackets() -> None:
    assert parse_endpoint("http://[::1]:9000").target == "[::1]:9000"


def test_a_broken_config_names_the_file(clean_env: pathlib.Path) -> None:
    write_config(clean_env, "api_server: [unclosed\n")
    with pytest.raises(ValueError, match="skyconfig.yaml"):
        resolve_endpoint()
