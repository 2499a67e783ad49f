"""Rendering the chart with helm and reading the manifests it produces."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "skypilot-api-server"
VALUES_DIR = Path(__file__).resolve().parent / "values"
DOCKERFILE = REPO / "Dockerfile"
RELEASE = "skypilot"
NAMESPACE = "team"

# The values files the tests render, by variant name ("default" uses none).
VARIANTS = {
    "default": (),
    "tls": ("tls.yaml",),
    "ingress": ("ingress.yaml",),
    "existing-secret": ("existing-secret.yaml",),
    "initial-token": ("initial-token.yaml",),
    "shared-server-identity": ("shared-server-identity.yaml",),
    "ssh-node-pools": ("ssh-node-pools.yaml",),
    "slurm-clusters": ("slurm-clusters.yaml",),
    "metrics": ("metrics.yaml",),
}


def helm_bin() -> str:
    """HELM_BIN, else the copy scripts/test-chart.sh installs, else helm on PATH."""
    explicit = os.environ.get("HELM_BIN")
    if explicit:
        return explicit
    installed = REPO / "target" / "tools" / "helm"
    if installed.is_file():
        return str(installed)
    found = shutil.which("helm")
    if found:
        return found
    raise RuntimeError("helm not found: run scripts/test-chart.sh, or set HELM_BIN")


class RenderError(Exception):
    """helm template failed; the message is helm's stderr."""


def _helm_template(
    chart_dir: Path, values_files: Iterable[str | Path], set_values: Iterable[str], show_only: str | None
) -> str:
    command = [helm_bin(), "template", RELEASE, str(chart_dir), "--namespace", NAMESPACE]
    for path in values_files:
        path = Path(path)
        command += ["--values", str(path if path.is_absolute() else VALUES_DIR / path)]
    for assignment in set_values:
        command += ["--set", assignment]
    if show_only:
        command += ["--show-only", show_only]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return done.stdout


@dataclass(frozen=True)
class SecretRef:
    """An environment value that comes from a Secret the chart did not render."""

    name: str
    key: str


@dataclass(frozen=True)
class MountedFile:
    """A file of a Secret volume in the server container (content is a
    SecretRef when the chart does not render the Secret)."""

    volume: str
    secret: str
    key: str
    content: str | SecretRef
    mode: int
    read_only: bool


class Rendered:
    """The manifests of one rendering of the chart."""

    def __init__(self, text: str):
        self.text = text
        self.docs: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(text) if doc]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc.get("kind") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict[str, Any] | None:
        for doc in self.all(kind):
            if doc["metadata"]["name"] == name:
                return doc
        return None

    @property
    def statefulset(self) -> dict[str, Any]:
        return self.one("StatefulSet")

    @property
    def pod(self) -> dict[str, Any]:
        return self.statefulset["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert len(containers) == 1, "the pod runs one container, the API server"
        return containers[0]

    @property
    def args(self) -> list[str]:
        return [str(arg) for arg in self.container.get("args", [])]

    def arg(self, flag: str) -> str | None:
        """The value after `flag` in the container's args (also `flag=value`)."""
        args = self.args
        for i, arg in enumerate(args):
            if arg == flag and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    def secret_data(self, name: str) -> dict[str, str] | None:
        """A rendered Secret's values, decoded; None when the chart did not render it."""
        secret = self.named("Secret", name)
        if secret is None:
            return None
        data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        data.update({key: str(value) for key, value in (secret.get("stringData") or {}).items()})
        return data

    def environment(self) -> dict[str, str | SecretRef]:
        """The server container's environment as Kubernetes builds it: envFrom
        (ConfigMaps, Secrets) first, then env in order with $(VAR) expansion.
        Values from Secrets the chart does not render are SecretRef."""
        env: dict[str, str | SecretRef] = {}
        container = self.container
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                config = self.named("ConfigMap", source["configMapRef"]["name"])
                assert config is not None, f"envFrom names a ConfigMap the chart lacks: {source}"
                for key, value in (config.get("data") or {}).items():
                    env[prefix + key] = str(value)
            elif "secretRef" in source:
                data = self.secret_data(source["secretRef"]["name"]) or {}
                for key, value in data.items():
                    env[prefix + key] = value
        for entry in container.get("env", []):
            name = entry["name"]
            if "value" in entry:
                env[name] = expand(str(entry["value"]), env)
            elif "valueFrom" in entry:
                origin = entry["valueFrom"]
                if "secretKeyRef" in origin:
                    ref = origin["secretKeyRef"]
                    data = self.secret_data(ref["name"])
                    env[name] = data[ref["key"]] if data is not None else SecretRef(ref["name"], ref["key"])
                elif "configMapKeyRef" in origin:
                    ref = origin["configMapKeyRef"]
                    config = self.named("ConfigMap", ref["name"])
                    assert config is not None, f"{name} names a ConfigMap the chart lacks"
                    env[name] = str(config["data"][ref["key"]])
                else:
                    raise AssertionError(f"unexpected valueFrom for {name}: {origin}")
            else:
                env[name] = ""
        return env

    def secret_dirs(self) -> dict[str, MountedFile]:
        """The Secret volumes that mount every key of their Secret (they list
        no items), by mount path; `key` and `content` are empty."""
        volumes = {volume["name"]: volume for volume in self.pod.get("volumes", [])}
        dirs: dict[str, MountedFile] = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None or "secret" not in volume or "items" in volume["secret"]:
                continue
            source = volume["secret"]
            dirs[mount["mountPath"].rstrip("/")] = MountedFile(
                volume=mount["name"],
                secret=source["secretName"],
                key="",
                content="",
                mode=int(source.get("defaultMode", 0o644)),
                read_only=bool(mount.get("readOnly")),
            )
        return dirs

    def secret_files(self, known_keys: dict[str, Iterable[str]] | None = None) -> dict[str, MountedFile]:
        """The files the server container sees from Secret volumes, by path:
        each item of the volume (every key when it lists none) at mountPath/path.
        The keys of a whole Secret the chart does not render are unknown here:
        `known_keys` (Secret name -> its keys) stands for such Secrets in the
        cluster; a Secret in neither adds no files (see secret_dirs)."""
        volumes = {volume["name"]: volume for volume in self.pod.get("volumes", [])}
        known_keys = known_keys or {}
        files: dict[str, MountedFile] = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None or "secret" not in volume:
                continue
            assert "subPath" not in mount, f"{mount['name']}: a subPath mount would not see Secret updates"
            source = volume["secret"]
            name = source["secretName"]
            data = self.secret_data(name)
            items = source.get("items")
            if items is None:
                keys = list(data) if data is not None else list(known_keys.get(name, ()))
                items = [{"key": key, "path": key} for key in keys]
            for item in items:
                key = item["key"]
                if data is not None:
                    assert key in data, f"volume {mount['name']} mounts key {key}, which Secret {name} lacks"
                content: str | SecretRef = data[key] if data is not None else SecretRef(name, key)
                path = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
                files[path] = MountedFile(
                    volume=mount["name"],
                    secret=name,
                    key=key,
                    content=content,
                    mode=int(item.get("mode", source.get("defaultMode", 0o644))),
                    read_only=bool(mount.get("readOnly")),
                )
        return files

    def mounted_file(self, path: str) -> MountedFile | None:
        """The Secret file at `path` in the server container: an item of a
        volume, or a key of a whole Secret mounted as a directory (its content a
        SecretRef when the chart does not render that Secret)."""
        mounted = self.secret_files().get(path)
        if mounted is not None:
            return mounted
        directory, _, key = path.rpartition("/")
        whole = self.secret_dirs().get(directory)
        if whole is None or not key:
            return None
        data = self.secret_data(whole.secret)
        if data is not None:
            return None  # the rendered Secret has no such key (secret_files knows them all)
        return MountedFile(
            volume=whole.volume,
            secret=whole.secret,
            key=key,
            content=SecretRef(whole.secret, key),
            mode=whole.mode,
            read_only=whole.read_only,
        )

    def file_setting(self, env_name: str) -> str | SecretRef | None:
        """What the server reads for a setting whose variable holds the path of
        a mounted Secret file: the file's content (None when unset)."""
        path = self.environment().get(env_name)
        if path is None:
            return None
        assert isinstance(path, str), f"{env_name} must hold a path, not come from {path}"
        mounted = self.mounted_file(path)
        assert mounted is not None, f"{env_name}={path} names no file mounted from a Secret"
        return mounted.content

    def setting(self, flag: str, env_name: str) -> str | None:
        """A server setting from its flag in args, else its environment variable."""
        value = self.arg(flag)
        if value is not None:
            return value
        env_value = self.environment().get(env_name)
        return env_value if isinstance(env_value, str) else None


def expand(value: str, env: dict[str, Any]) -> str:
    """Kubernetes' $(VAR) expansion of an env value ($$ escapes a $)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        known = env.get(name)
        return known if isinstance(known, str) else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, value)


def render(
    variant: str = "default",
    *,
    values_files: Iterable[str | Path] = (),
    set_values: Iterable[str] = (),
) -> Rendered:
    """Renders the chart with a variant's values files, then more files and --set values."""
    files = list(VARIANTS[variant]) + list(values_files)
    return Rendered(_helm_template(CHART, files, set_values, None))


@lru_cache(maxsize=None)
def render_variant(variant: str) -> Rendered:
    """One rendering per variant, shared by the tests (generated passwords are random)."""
    return render(variant)


def render_error(*, values_files: Iterable[str | Path] = (), set_values: Iterable[str] = ()) -> str:
    """Renders expecting a failure; returns helm's message."""
    try:
        _helm_template(CHART, values_files, set_values, None)
    except RenderError as failure:
        return str(failure)
    raise AssertionError(f"rendering succeeded although it should fail: {list(set_values)}")


def _render_copy(
    mutate, variant: str, values_files: Iterable[str | Path], set_values: Iterable[str], show_only: str | None
) -> str:
    """Renders a copy of the chart that `mutate(copy_dir)` changed first."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / CHART.name
        shutil.copytree(CHART, copy)
        mutate(copy)
        files = [VALUES_DIR / name for name in VARIANTS[variant]] + [Path(f) for f in values_files]
        return _helm_template(copy, files, set_values, show_only)


def render_notes(variant: str = "default", *, set_values: Iterable[str] = ()) -> str:
    """NOTES.txt as helm install would print it (helm template skips NOTES, so
    a copy of the chart renders it as a template)."""

    def add_notes_manifest(copy: Path) -> None:
        notes = (copy / "templates" / "NOTES.txt").read_text()
        (copy / "templates" / "_test_notes.tpl").write_text(
            '{{- define "test.notes" -}}\n' + notes + "\n{{- end }}\n"
        )
        (copy / "templates" / "test-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered-notes\ndata:\n"
            '  NOTES.txt: |\n{{ include "test.notes" . | indent 4 }}\n'
        )

    text = _render_copy(add_notes_manifest, variant, (), set_values, "templates/test-notes.yaml")
    return Rendered(text).one("ConfigMap")["data"]["NOTES.txt"]


# The cluster query of templates/secret.yaml (helm template has no cluster, so
# lookup always finds nothing there).
SECRET_LOOKUP = '(lookup "v1" "Secret" .Release.Namespace $name)'


def render_with_existing_secret(previous: dict[str, str], *, set_values: Iterable[str] = ()) -> Rendered:
    """Renders as an upgrade would when the release's Secret already holds
    `previous` (plain values): lookup is replaced by that Secret."""

    def replace_lookup(copy: Path) -> None:
        template = copy / "templates" / "secret.yaml"
        text = template.read_text()
        assert text.count(SECRET_LOOKUP) == 1, "templates/secret.yaml no longer looks the Secret up as expected"
        template.write_text(text.replace(SECRET_LOOKUP, "(.Values.testClusterSecret)"))

    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "cluster-secret.yaml"
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in previous.items()}
        values.write_text(yaml.safe_dump({"testClusterSecret": {"data": encoded}}))
        return Rendered(_render_copy(replace_lookup, "default", [values], set_values, None))
