"""Which API server to talk to, and with which credentials, resolved as the
`sky` CLI does:

1. the endpoint passed to the client, else ``$SKYPILOT_API_SERVER_ENDPOINT``,
   else ``api_server.endpoint`` in ``~/.sky/skyconfig.yaml``, else the local
   default ``http://127.0.0.1:46580`` (``$SKYPILOT_API_SERVER_LOCAL_PORT``
   moves it);
2. ``http://user:password@host:port`` means HTTP basic credentials,
   ``https://`` means TLS (system roots plus ``api_server.ca_cert``);
3. a service-account token (argument, else ``$SKYPILOT_SERVICE_ACCOUNT_TOKEN``,
   else ``api_server.service_account_token``) is sent as a bearer token and
   wins over basic credentials.
"""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple
from urllib.parse import unquote

import yaml

DEFAULT_PORT = 46580
ENDPOINT_ENV = "SKYPILOT_API_SERVER_ENDPOINT"
TOKEN_ENV = "SKYPILOT_SERVICE_ACCOUNT_TOKEN"
LOCAL_PORT_ENV = "SKYPILOT_API_SERVER_LOCAL_PORT"
API_VERSION = 1
API_VERSION_HEADER = "x-skypilot-api-version"


def config_path() -> str:
    """``~/.sky/skyconfig.yaml`` (``~`` is ``$HOME``)."""
    return os.path.join(os.path.expanduser("~"), ".sky", "skyconfig.yaml")


def api_server_config(path: Optional[str] = None) -> Dict[str, Any]:
    """The ``api_server`` section of the config file; ``{}`` when there is none."""
    path = path or config_path()
    try:
        with open(path, encoding="utf-8") as handle:
            root = yaml.safe_load(handle)
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}. Fix or remove the file.") from None
    if root is None:
        return {}
    if not isinstance(root, dict):
        raise ValueError(f"{path}: expected a mapping of keys to values at the top level")
    section = root.get("api_server")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValueError(f"invalid `api_server` in {path}: expected a mapping (e.g. `endpoint: URL`)")
    return section


def _config_str(section: Dict[str, Any], key: str) -> Optional[str]:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"invalid `api_server.{key}` in {config_path()}: expected a string")
    return value.strip() or None


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``http[s]://[user:password@]host[:port]``."""

    tls: bool
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    source: str = "argument"

    @property
    def target(self) -> str:
        """``host:port`` as gRPC wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        """The URL without credentials."""
        return f"{'https' if self.tls else 'http'}://{self.target}"

    def display(self) -> str:
        """The URL with the password masked."""
        if self.username is None:
            return self.uri
        return f"{'https' if self.tls else 'http'}://{self.username}:****@{self.target}"


def parse_endpoint(url: str, source: str = "argument") -> Endpoint:
    """Parses an endpoint URL; raises ValueError naming what is wrong."""

    def invalid(problem: str) -> ValueError:
        return ValueError(
            f"invalid API server endpoint {url!r} ({source}): {problem}. "
            "Expected http[s]://[user:password@]host[:port]."
        )

    text = url.strip()
    if text.startswith("http://"):
        tls, rest = False, text[len("http://") :]
    elif text.startswith("https://"):
        tls, rest = True, text[len("https://") :]
    else:
        raise invalid("it must start with http:// or https://")
    authority, _, path = rest.partition("/")
    if path:
        raise invalid(f"a path (/{path}) is not supported, give only the host and port")
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        user, _, secret = userinfo.partition(":")
        if not user:
            raise invalid("the user name before '@' is empty")
        try:
            username, password = unquote(user, errors="strict"), unquote(secret, errors="strict")
        except UnicodeDecodeError:
            raise invalid("the credentials are not UTF-8") from None
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise invalid("an IPv6 address misses its ']'")
        if after and not after.startswith(":"):
            raise invalid(f"unexpected {after!r} after the IPv6 address")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    if not host:
        raise invalid("the host is empty")
    if not all(c.isascii() and (c.isalnum() or c in "-._:") for c in host):
        raise invalid(f"{host!r} is not a valid host name")
    if port_text is None:
        port = 443 if tls else 80
    else:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise invalid(f"{port_text!r} is not a port number from 1 to 65535")
        port = int(port_text)
    return Endpoint(tls=tls, host=host, port=port, username=username, password=password, source=source)


def resolve_endpoint(endpoint: Optional[str] = None) -> Endpoint:
    """The endpoint: the argument, else the environment, else the config file,
    else the local default."""
    if endpoint:
        return parse_endpoint(endpoint, "argument")
    from_env = os.environ.get(ENDPOINT_ENV, "").strip()
    if from_env:
        return parse_endpoint(from_env, f"${ENDPOINT_ENV}")
    from_config = _config_str(api_server_config(), "endpoint")
    if from_config:
        return parse_endpoint(from_config, f"api_server.endpoint of {config_path()}")
    port_text = os.environ.get(LOCAL_PORT_ENV, "").strip()
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"${LOCAL_PORT_ENV}={port_text!r} is not a port number from 1 to 65535")
        port = int(port_text)
    return Endpoint(tls=False, host="127.0.0.1", port=port, source="local default")


@dataclass(frozen=True)
class Connection:
    """Everything needed to open a channel and authenticate calls."""

    endpoint: Endpoint
    token: Optional[str] = field(default=None, repr=False)
    ca_cert: Optional[str] = None

    @property
    def basic_auth(self) -> Optional[Tuple[str, str]]:
        if self.endpoint.username is None:
            return None
        return self.endpoint.username, self.endpoint.password or ""

    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """The headers sent with every call."""
        headers = [(API_VERSION_HEADER, str(API_VERSION))]
        if self.token:
            headers.append(("authorization", f"Bearer {self.token}"))
        elif self.basic_auth is not None:
            user, password = self.basic_auth
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers.append(("authorization", f"Basic {encoded}"))
        return tuple(headers)

    def root_certificates(self) -> Optional[bytes]:
        """PEM roots for TLS: the system bundle plus ``ca_cert``; None lets
        gRPC use its own roots when neither is found."""
        pems = []
        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile):
            if candidate and os.path.isfile(candidate):
                with open(candidate, "rb") as handle:
                    pems.append(handle.read())
                break
        if self.ca_cert:
            try:
                with open(os.path.expanduser(self.ca_cert), "rb") as handle:
                    pems.append(handle.read())
            except OSError as err:
                raise ValueError(f"cannot read the CA certificate {self.ca_cert}: {err}") from None
        return b"\n".join(pems) if pems else None


def resolve_connection(
    endpoint: Optional[str] = None,
    *,
    token: Optional[str] = None,
    username: Optional[str] = None,
    password: Optional[str] = None,
    ca_cert: Optional[str] = None,
) -> Connection:
    """Resolves the endpoint and credentials as the CLI does (see the module doc).

    ``username``/``password`` override credentials in the URL, and keep a token
    from the environment or the config file from being used (an explicit
    ``token`` still wins)."""
    resolved = resolve_endpoint(endpoint)
    if username is not None:
        resolved = Endpoint(
            tls=resolved.tls,
            host=resolved.host,
            port=resolved.port,
            username=username,
            password=password or "",
            source=resolved.source,
        )
    elif password is not None:
        raise ValueError("a password needs a username")
    config: Optional[Dict[str, Any]] = None

    def from_config(key: str) -> Optional[str]:
        nonlocal config
        if config is None:
            config = api_server_config()
        return _config_str(config, key)

    if token is None and username is None:
        # Credentials given as arguments are not overridden by a token from
        # the environment or the config file.
        token = os.environ.get(TOKEN_ENV, "").strip() or from_config("service_account_token")
    if ca_cert is None:
        ca_cert = from_config("ca_cert")
    return Connection(endpoint=resolved, token=token or None, ca_cert=ca_cert)
