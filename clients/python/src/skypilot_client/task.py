"""`Task`: a SkyPilot task, built in code or from a task YAML, sent as a
`skypilot.v1.TaskSpec`.

The mapping covers the fields the server understands (name, workdir,
num_nodes, resources: infra/cpus/memory/accelerators/ports/autostop/job_recovery,
envs, secrets, file_mounts, setup, run). Values are checked only for their
shape (and `resources.job_recovery` fully); the server validates the rest (CPU
amounts, accelerator names, infra ...).

`Pipeline` reads the YAML of a managed job (`Client.jobs_launch`): one or more
task documents separated by ``---``, run one after another.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import yaml

from ._gen.skypilot.v1 import clusters_pb2

PathLike = Union[str, "os.PathLike[str]"]
Amount = Union[str, int, float]

TASK_FIELDS = ("name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts", "setup", "run")
RESOURCE_FIELDS = ("infra", "cpus", "memory", "accelerators", "ports", "autostop", "use_spot", "job_recovery")
#: SkyPilot task fields a TaskSpec cannot carry.
UNSUPPORTED_TASK_FIELDS = {
    "service": "SkyServe services are not supported by this API server",
    "volumes": "volumes are not supported by this API server",
    "config": "per-task config overrides are not supported by this API server",
    "storage_mounts": "bucket mounts are not supported by this API server",
}
DEFAULT_AUTOSTOP_MINUTES = 5
#: Recovery strategies of managed jobs (any case; empty means FAILOVER).
JOB_RECOVERY_STRATEGIES = ("FAILOVER", "EAGER_NEXT_REGION")
#: Most restarts on errors a managed job may ask for.
MAX_RESTARTS_ON_ERRORS = 100
#: Most tasks in one pipeline.
MAX_PIPELINE_TASKS = 32


class _Number(str):
    """A YAML int or float kept as written (``0.001`` stays ``"0.001"``), with
    its parsed value."""

    value: Union[int, float]

    def __new__(cls, text: str, value: Union[int, float]) -> "_Number":
        number = super().__new__(cls, text)
        number.value = value
        return number


class _Loader(yaml.SafeLoader):
    pass


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> _Number:
    return _Number(str(loader.construct_scalar(node)), yaml.SafeLoader.construct_yaml_int(loader, node))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> _Number:
    return _Number(str(loader.construct_scalar(node)), yaml.SafeLoader.construct_yaml_float(loader, node))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _fail(path: str, problem: str) -> ValueError:
    return ValueError(f"`{path}`: {problem}")


def _string(value: Any, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, _Number):
        return value
    raise _fail(path, "must be a string")


def _scalar(value: Any, path: str) -> str:
    """Strings, numbers (as written) and booleans (``true``/``false``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if hasattr(value, "isoformat"):  # an unquoted date
        return str(value.isoformat())
    raise _fail(path, "must be a string or a number")


def _mapping(value: Any, path: str, shape: str) -> Dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"must be a mapping of {shape}")
    for key in value:
        if not isinstance(key, str) or isinstance(key, _Number):
            raise _fail(f"{path}.{key}", "field names must be strings")
    return value


def _accelerators(value: Any, path: str = "accelerators") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str) and not isinstance(value, _Number):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((name, count),) = value.items()
        number = getattr(count, "value", count)
        if not isinstance(number, int) or isinstance(number, bool):
            raise _fail(f"{path}.{name}", "the count must be a whole number")
        return f"{name}:{number}"
    raise _fail(path, "must be NAME or NAME:COUNT (e.g. A100:2), or {NAME: COUNT}")


def _amount(value: Optional[Amount], path: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise _fail(path, "must be a number or a string like 2+")
    return _scalar(value, path)


def _minutes(value: Any, path: str) -> int:
    number = getattr(value, "value", value)
    if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
        return number
    if isinstance(value, str) and not isinstance(value, _Number):
        text = value.strip()
        factor = 60 if text.endswith("h") else 1
        digits = text[:-1] if text.endswith(("h", "m")) else text
        if digits.strip().isdigit():
            return int(digits) * factor
    raise _fail(path, "must be a whole number of minutes, or a duration like 10m or 2h")


def _resolve_path(path: str, base_dir: str) -> str:
    if path.startswith("~"):
        return os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    return os.path.join(base_dir, path)


class JobRecovery(NamedTuple):
    """``resources.job_recovery`` of a managed job: how its cluster is
    relaunched (``strategy``: ``FAILOVER`` or ``EAGER_NEXT_REGION``, any case;
    empty for FAILOVER), and how many times the job is launched again when its
    own code fails (``max_restarts_on_errors``, 0 to 100). Lost nodes are
    always recovered."""

    strategy: str = ""
    max_restarts_on_errors: int = 0

    def to_proto(self) -> clusters_pb2.JobRecovery:
        return clusters_pb2.JobRecovery(strategy=self.strategy, max_restarts_on_errors=self.max_restarts_on_errors)


def _job_recovery(value: Any, path: str = "resources.job_recovery") -> Optional[JobRecovery]:
    """``STRATEGY`` or ``{strategy, max_restarts_on_errors}`` (or a
    `JobRecovery`), checked as the server checks it."""
    if value is None:
        return None
    strategy, restarts = "", 0
    if isinstance(value, JobRecovery):
        strategy, restarts = value
    elif isinstance(value, str) and not isinstance(value, _Number):
        strategy = value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key == "strategy":
                strategy = _string(item, f"{path}.strategy")
            elif key == "max_restarts_on_errors":
                restarts = _restarts(item, f"{path}.max_restarts_on_errors")
            else:
                raise ValueError(
                    f"unknown field `{path}.{key}`; valid fields: strategy, max_restarts_on_errors"
                )
    else:
        raise _fail(path, "must be a strategy name or {strategy, max_restarts_on_errors}")
    if not isinstance(strategy, str):
        raise _fail(f"{path}.strategy", "must be a string")
    if strategy and strategy.upper() not in JOB_RECOVERY_STRATEGIES:
        raise _fail(
            f"{path}.strategy",
            f"\"{strategy}\" is not a recovery strategy; use one of {', '.join(JOB_RECOVERY_STRATEGIES)}",
        )
    restarts = _restarts(restarts, f"{path}.max_restarts_on_errors")
    if not 0 <= restarts <= MAX_RESTARTS_ON_ERRORS:
        raise _fail(
            f"{path}.max_restarts_on_errors", f"must be from 0 to {MAX_RESTARTS_ON_ERRORS}, not {restarts}"
        )
    return JobRecovery(str(strategy), restarts)


def _restarts(value: Any, path: str) -> int:
    if value is None:
        return 0
    number = getattr(value, "value", value)
    if isinstance(number, int) and not isinstance(number, bool):
        return number
    if isinstance(number, float):
        raise _fail(path, f"must be a whole number, not {value}")
    raise _fail(path, "must be a whole number")


class Task:
    """A SkyPilot task.

    >>> Task(run="python train.py", setup="pip install -r requirements.txt",
    ...      cpus="2+", accelerators="A100:1", envs={"EPOCHS": "3"})

    ``cpus`` and ``memory`` (GiB) take ``2``, ``0.5`` or ``"2+"`` (at least);
    ``accelerators`` takes ``"A100:2"`` or ``{"A100": 2}``. ``workdir`` and
    ``file_mounts`` sources are local paths (uploaded when the server runs
    elsewhere) or upload references (``sky-upload://...``). ``job_recovery``
    (managed jobs only) takes a strategy (``"FAILOVER"``), a `JobRecovery` or
    ``{"strategy": ..., "max_restarts_on_errors": 3}``.
    """

    def __init__(
        self,
        run: str = "",
        *,
        setup: str = "",
        name: str = "",
        num_nodes: int = 1,
        envs: Optional[Mapping[str, str]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        workdir: str = "",
        file_mounts: Optional[Mapping[str, str]] = None,
        cpus: Optional[Amount] = None,
        memory: Optional[Amount] = None,
        accelerators: Union[str, Mapping[str, int], None] = None,
        infra: str = "",
        ports: Iterable[Union[int, str]] = (),
        autostop_idle_minutes: Optional[int] = None,
        autostop_down: bool = False,
        job_recovery: Union[str, Mapping[str, Any], JobRecovery, None] = None,
    ) -> None:
        self.run = run
        self.setup = setup
        self.name = name
        self.num_nodes = num_nodes
        self.envs: Dict[str, str] = {k: _scalar(v, f"envs.{k}") for k, v in (envs or {}).items()}
        self.secrets: Dict[str, str] = {k: _scalar(v, f"secrets.{k}") for k, v in (secrets or {}).items()}
        self.workdir = workdir
        self.file_mounts: Dict[str, str] = dict(file_mounts or {})
        self.cpus = _amount(cpus, "cpus")
        self.memory = _amount(memory, "memory")
        self.accelerators = _accelerators(accelerators)
        self.infra = infra
        self.ports: List[str] = [str(port) for port in ports]
        self.autostop_idle_minutes = autostop_idle_minutes
        self.autostop_down = autostop_down
        self.job_recovery: Optional[JobRecovery] = _job_recovery(job_recovery)

    def __repr__(self) -> str:
        shown = {
            key: value
            for key, value in vars(self).items()
            if value not in ("", None, {}, [], False) and not (key == "num_nodes" and value == 1)
        }
        if "secrets" in shown:
            shown["secrets"] = {key: "****" for key in self.secrets}
        return "Task(" + ", ".join(f"{key}={value!r}" for key, value in shown.items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and vars(self) == vars(other)

    @classmethod
    def from_yaml(
        cls,
        text_or_path: PathLike,
        *,
        envs: Optional[Mapping[str, str]] = None,
        secrets: Optional[Mapping[str, str]] = None,
    ) -> "Task":
        """Reads a SkyPilot task YAML: a file path or the YAML text itself.

        Relative ``workdir`` and ``file_mounts`` sources are resolved against
        the file's folder (the current folder for text). ``envs``/``secrets``
        override the YAML's, as ``--env``/``--secret`` do; an env or secret
        declared ``null`` must be given there. Raises ValueError naming the
        field for a malformed task.
        """
        text, base_dir, origin = _read_yaml(text_or_path)
        try:
            root = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as err:
            raise ValueError(f"{origin} is malformed: {err}") from None
        if root is None:
            root = {}
        if not isinstance(root, dict):
            raise ValueError(f"{origin} must be a mapping of fields (name, resources, setup, run, ...)")
        return cls._from_mapping(root, base_dir, envs or {}, secrets or {})

    @classmethod
    def _from_mapping(
        cls,
        root: Dict[Any, Any],
        base_dir: str,
        env_overrides: Mapping[str, str],
        secret_overrides: Mapping[str, str],
    ) -> "Task":
        task = cls()
        required: List[str] = []
        for key, value in _mapping(root, "task", "fields").items():
            if key in UNSUPPORTED_TASK_FIELDS:
                raise _fail(key, UNSUPPORTED_TASK_FIELDS[key])
            if key == "name":
                task.name = _string(value, "name")
            elif key == "workdir":
                if isinstance(value, dict):
                    raise _fail("workdir", "git workdirs are not supported; give a local directory")
                workdir = _string(value, "workdir")
                task.workdir = _resolve_path(workdir, base_dir) if workdir else ""
            elif key == "num_nodes":
                number = getattr(value, "value", value)
                if value is None:
                    number = 1
                if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                    raise _fail("num_nodes", f"must be a whole number of at least 1, not {value!r}")
                task.num_nodes = number
            elif key == "resources":
                task._read_resources(value)
            elif key in ("envs", "secrets"):
                target = task.envs if key == "envs" else task.secrets
                for name, item in _mapping(value, key, "NAME: value").items():
                    if item is None:
                        required.append(name)
                    else:
                        target[name] = _scalar(item, f"{key}.{name}")
            elif key == "file_mounts":
                for dest, source in _mapping(value, key, "/node/path: local/path").items():
                    if isinstance(source, dict):
                        raise _fail(f"file_mounts.{dest}", "storage (bucket) mounts are not supported")
                    source = _string(source, f"file_mounts.{dest}")
                    if "://" in source:
                        raise _fail(f"file_mounts.{dest}", "bucket and URL sources are not supported")
                    task.file_mounts[dest] = _resolve_path(source, base_dir)
            elif key == "setup":
                task.setup = _string(value, "setup")
            elif key == "run":
                task.run = _string(value, "run")
            else:
                raise ValueError(f"unknown field `{key}` in the task YAML; valid fields: {', '.join(TASK_FIELDS)}")
        task.envs.update({k: _scalar(v, f"envs.{k}") for k, v in env_overrides.items()})
        task.secrets.update({k: _scalar(v, f"secrets.{k}") for k, v in secret_overrides.items()})
        missing = [name for name in required if name not in task.envs and name not in task.secrets]
        if missing:
            raise ValueError(
                ", ".join(f"`envs.{name}`" for name in missing)
                + " required (declared null in the task YAML): pass "
                + ("it" if len(missing) == 1 else "them")
                + " with Task.from_yaml(..., envs={...}) or secrets={...}"
            )
        return task

    def _read_resources(self, value: Any) -> None:
        for key, item in _mapping(value, "resources", "fields (e.g. cpus: 2)").items():
            path = f"resources.{key}"
            if key == "infra":
                self.infra = _string(item, path)
            elif key == "cpus":
                self.cpus = _amount(item, path)
            elif key == "memory":
                self.memory = _amount(item, path)
            elif key == "accelerators":
                self.accelerators = _accelerators(item, path)
            elif key == "ports":
                items = item if isinstance(item, list) else ([] if item is None else [item])
                self.ports = [_scalar(port, path) for port in items]
            elif key == "autostop":
                self._read_autostop(item, path)
            elif key == "job_recovery":
                self.job_recovery = _job_recovery(item, path)
            elif key == "use_spot":
                if item is True:
                    raise _fail(path, "spot instances are not offered by this API server")
                if item not in (False, None):
                    raise _fail(path, "must be true or false")
            else:
                raise ValueError(
                    f"`{path}` is not supported by this API server; valid fields: {', '.join(RESOURCE_FIELDS)}"
                )

    def _read_autostop(self, value: Any, path: str) -> None:
        if value is None or value is False:
            return
        if value is True:
            self.autostop_idle_minutes = DEFAULT_AUTOSTOP_MINUTES
        elif isinstance(value, dict):
            self.autostop_idle_minutes = DEFAULT_AUTOSTOP_MINUTES
            for key, item in value.items():
                if key == "idle_minutes":
                    self.autostop_idle_minutes = _minutes(item, f"{path}.idle_minutes")
                elif key == "down":
                    if not isinstance(item, bool):
                        raise _fail(f"{path}.down", "must be true or false")
                    self.autostop_down = item
                else:
                    raise _fail(f"{path}.{key}", "unknown field; valid fields: idle_minutes, down")
        else:
            self.autostop_idle_minutes = _minutes(value, path)

    def to_proto(self) -> clusters_pb2.TaskSpec:
        """The task as the `skypilot.v1.TaskSpec` message the server receives."""
        resources = clusters_pb2.Resources(
            infra=self.infra,
            cpus=_amount(self.cpus, "cpus"),
            memory=_amount(self.memory, "memory"),
            accelerators=_accelerators(self.accelerators),
            ports=[str(port) for port in self.ports],
            autostop_down=self.autostop_down,
        )
        if self.autostop_idle_minutes is not None:
            resources.autostop_idle_minutes = self.autostop_idle_minutes
        recovery = _job_recovery(self.job_recovery)
        if recovery is not None:
            resources.job_recovery.CopyFrom(recovery.to_proto())
        return clusters_pb2.TaskSpec(
            name=self.name,
            workdir=self.workdir,
            num_nodes=self.num_nodes,
            resources=resources,
            envs=self.envs,
            secrets=self.secrets,
            file_mounts=self.file_mounts,
            setup=self.setup,
            run=self.run,
        )

    @classmethod
    def coerce(cls, task: Union["Task", PathLike]) -> "Task":
        """A Task as is; a path to a task YAML, or YAML text (a mapping with at
        least one task field), read with `from_yaml`; any other string is a
        shell command to run (as ``sky exec CLUSTER 'echo hi'`` takes one)."""
        if isinstance(task, Task):
            return task
        if _yaml_path(task) is not None or _looks_like_task_yaml(str(task)):
            return cls.from_yaml(task)
        if not isinstance(task, str):
            raise TypeError(f"expected a Task, a task YAML or a command, not {type(task).__name__}")
        if _names_a_yaml_file(task):
            raise FileNotFoundError(f"no such task YAML: {task}")
        return cls(run=task)


class Pipeline:
    """A managed job's tasks, run one after another on clusters of their own
    (`Client.jobs_launch`), and the job's name (empty: the first task's).

    >>> Pipeline([Task(run="python prep.py"), Task(run="python train.py")], name="train")
    >>> Pipeline.from_yaml("pipeline.yaml")   # task documents separated by ---
    """

    def __init__(self, tasks: Sequence[Task], name: str = "") -> None:
        self.tasks: List[Task] = list(tasks)
        self.name = name

    def __repr__(self) -> str:
        named = f"name={self.name!r}, " if self.name else ""
        return f"Pipeline({named}tasks={self.tasks!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and (self.name, self.tasks) == (other.name, other.tasks)

    @classmethod
    def from_yaml(
        cls,
        text_or_path: PathLike,
        *,
        envs: Optional[Mapping[str, str]] = None,
        secrets: Optional[Mapping[str, str]] = None,
    ) -> "Pipeline":
        """Reads a pipeline YAML (a file path or the text), as ``sky jobs
        launch`` does: task documents separated by ``---``, at most
        32; when there are several, a first document holding only ``name``
        names the pipeline. A single task YAML is a pipeline of one task.
        ``envs``/``secrets`` apply to every task, as in `Task.from_yaml`.
        Raises ValueError naming the task (``task 2 of the pipeline: ...``)
        and the field for a malformed one."""
        text, base_dir, origin = _read_yaml(text_or_path)
        documents: List[Any] = []
        try:
            for document in yaml.load_all(text, Loader=_Loader):  # noqa: S506 - a SafeLoader subclass
                # An empty document (a trailing ``---``) is no task.
                if document is not None or not documents:
                    documents.append(document)
                if len(documents) > MAX_PIPELINE_TASKS + 1:
                    raise ValueError(f"the pipeline has more than {MAX_PIPELINE_TASKS} tasks")
        except yaml.YAMLError as err:
            raise ValueError(f"{origin} is malformed: {err}") from None
        if not documents:
            documents = [None]
        name = ""
        first = documents[0]
        if len(documents) > 1 and isinstance(first, dict) and list(first) == ["name"]:
            name = _string(first["name"], "name")
            documents.pop(0)
        if len(documents) > MAX_PIPELINE_TASKS:
            raise ValueError(f"the pipeline has more than {MAX_PIPELINE_TASKS} tasks")
        tasks = []
        for index, document in enumerate(documents):
            try:
                if document is None:
                    document = {}
                if not isinstance(document, dict):
                    raise ValueError(f"{origin} must be a mapping of fields (name, resources, setup, run, ...)")
                tasks.append(Task._from_mapping(document, base_dir, envs or {}, secrets or {}))
            except ValueError as err:
                if index == 0:
                    raise
                raise ValueError(f"task {index + 1} of the pipeline: {err}") from None
        return cls(tasks, name)

    @classmethod
    def coerce(cls, tasks: "PipelineLike") -> "Pipeline":
        """A Pipeline as is; a Task as a pipeline of one; a path to a pipeline
        or task YAML, or YAML text, read with `from_yaml`; any other string a
        shell command (as `Task.coerce`); a list of any of these but pipelines,
        one task each."""
        if isinstance(tasks, Pipeline):
            return tasks
        if isinstance(tasks, Task):
            return cls([tasks])
        if isinstance(tasks, (str, os.PathLike)):
            if _yaml_path(tasks) is not None or _looks_like_pipeline_yaml(str(tasks)):
                return cls.from_yaml(tasks)
            return cls([Task.coerce(tasks)])
        if isinstance(tasks, Sequence):
            return cls([Task.coerce(task) for task in tasks])
        raise TypeError(f"expected tasks, a pipeline YAML or a command, not {type(tasks).__name__}")

    def to_proto(self) -> List[clusters_pb2.TaskSpec]:
        """The tasks as the `skypilot.v1.TaskSpec` messages the server receives."""
        return [task.to_proto() for task in self.tasks]


#: What `Client.jobs_launch` takes: a Pipeline, a Task, a pipeline or task
#: YAML (path or text), a shell command, or a list of tasks.
PipelineLike = Union[Pipeline, Task, PathLike, Sequence[Union[Task, PathLike]]]


def _read_yaml(text_or_path: PathLike) -> Tuple[str, str, str]:
    """The YAML text, the folder relative paths are resolved against, and how to name it in errors."""
    path = _yaml_path(text_or_path)
    if path is None and _names_a_yaml_file(text_or_path):
        raise FileNotFoundError(f"no such task YAML: {text_or_path}")
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            return handle.read(), os.path.dirname(os.path.abspath(path)), str(path)
    return str(text_or_path), os.getcwd(), "the task YAML"


def _looks_like_pipeline_yaml(text: str) -> bool:
    """YAML text whose documents are all mappings, one with a task field."""
    known = set(TASK_FIELDS) | set(UNSUPPORTED_TASK_FIELDS)
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return False
    return all(isinstance(root, dict) or root is None for root in documents) and any(
        isinstance(root, dict) and any(isinstance(key, str) and key in known for key in root) for root in documents
    )


def _yaml_path(value: PathLike) -> Optional[str]:
    """The file a task argument names, if it names one."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str) or "\n" in value or not value.strip():
        return None
    candidate = os.path.expanduser(value.strip())
    return candidate if os.path.isfile(candidate) else None


def _names_a_yaml_file(value: PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    text = str(value).strip()
    return "\n" not in text and " " not in text and text.endswith((".yaml", ".yml"))


def _looks_like_task_yaml(text: str) -> bool:
    known = set(TASK_FIELDS) | set(UNSUPPORTED_TASK_FIELDS)
    try:
        root = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return False
    return isinstance(root, dict) and any(isinstance(key, str) and key in known for key in root)
