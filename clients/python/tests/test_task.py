"""Task YAML to TaskSpec, without a server."""

from __future__ import annotations

import os
import pathlib

import pytest

from skypilot_client import JobRecovery, Pipeline, Task

FULL = """
name: train
workdir: .
num_nodes: 2
resources:
  infra: local
  cpus: 2+
  memory: 4
  accelerators: {A100: 2}
  ports: [8080, 9000-9010]
  autostop: {idle_minutes: 10, down: true}
envs:
  LR: 0.0010
  DEBUG: true
  TOKEN: null
secrets:
  KEY: s3cret
file_mounts:
  /data: ./data
  ~/cfg: /etc/cfg
setup: pip install x
run: python train.py
"""


def test_a_full_task_maps_every_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(FULL)
    task = Task.from_yaml(str(path), envs={"TOKEN": "t0k"})
    spec = task.to_proto()
    assert (spec.name, spec.num_nodes, spec.setup, spec.run) == ("train", 2, "pip install x", "python train.py")
    assert spec.workdir == os.path.join(str(tmp_path), ".")
    resources = spec.resources
    assert (resources.infra, resources.cpus, resources.memory) == ("local", "2+", "4")
    assert resources.accelerators == "A100:2"
    assert list(resources.ports) == ["8080", "9000-9010"]
    assert resources.HasField("autostop_idle_minutes")
    assert (resources.autostop_idle_minutes, resources.autostop_down) == (10, True)
    # Numbers keep the text they were written with; booleans read as the CLI writes them.
    assert dict(spec.envs) == {"LR": "0.0010", "DEBUG": "true", "TOKEN": "t0k"}
    assert dict(spec.secrets) == {"KEY": "s3cret"}
    assert spec.file_mounts["/data"] == os.path.join(str(tmp_path), "./data")
    assert spec.file_mounts["~/cfg"] == "/etc/cfg"


def test_text_and_path_objects_are_accepted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("run: echo hi\nworkdir: sub\n")
    assert Task.from_yaml(path).workdir == str(tmp_path / "sub")
    from_text = Task.from_yaml("run: echo hi\nworkdir: sub\n")
    assert from_text.workdir == os.path.join(os.getcwd(), "sub")
    assert Task.from_yaml("") == Task()


def test_required_envs_must_be_given() -> None:
    with pytest.raises(ValueError, match=r"`envs.MODEL` required"):
        Task.from_yaml("envs:\n  MODEL: null\nrun: echo $MODEL\n")
    task = Task.from_yaml("envs:\n  MODEL: null\nrun: echo $MODEL\n", envs={"MODEL": "tiny"})
    assert task.envs == {"MODEL": "tiny"}
    task = Task.from_yaml("secrets:\n  HF: null\n", secrets={"HF": "x"})
    assert task.secrets == {"HF": "x"}


@pytest.mark.parametrize(
    "text, field",
    [
        ("nmae: x", "unknown field `nmae`"),
        ("resources:\n  cpu: 2", "resources.cpu"),
        ("resources:\n  region: us-east-1", "resources.region"),
        ("resources:\n  use_spot: true", "resources.use_spot"),
        ("num_nodes: two", "`num_nodes`"),
        ("num_nodes: 0", "`num_nodes`"),
        ("envs: [A]", "`envs`"),
        ("service: {}", "`service`"),
        ("file_mounts:\n  /d: s3://bucket", "file_mounts./d"),
        ("resources:\n  autostop: soon", "resources.autostop"),
        ("run: [unclosed", "malformed"),
        ("- a list", "must be a mapping"),
    ],
)
def test_malformed_tasks_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ValueError) as info:
        Task.from_yaml(text)
    assert field in str(info.value)


@pytest.mark.parametrize(
    "autostop, minutes, down",
    [("true", 5, False), ("10", 10, False), ("2h", 120, False), ("{idle_minutes: 3, down: true}", 3, True)],
)
def test_autostop_forms(autostop: str, minutes: int, down: bool) -> None:
    spec = Task.from_yaml(f"resources:\n  autostop: {autostop}\n").to_proto()
    assert (spec.resources.autostop_idle_minutes, spec.resources.autostop_down) == (minutes, down)


def test_no_autostop_leaves_the_field_unset() -> None:
    assert not Task(run="x").to_proto().resources.HasField("autostop_idle_minutes")


def test_tasks_built_in_code() -> None:
    task = Task(
        run="python train.py",
        setup="pip install -r requirements.txt",
        name="train",
        num_nodes=2,
        envs={"EPOCHS": 3},
        secrets={"TOKEN": "x"},
        cpus=0.5,
        memory=2,
        accelerators={"A100": 1},
        ports=[8080],
    )
    spec = task.to_proto()
    assert (spec.resources.cpus, spec.resources.memory, spec.resources.accelerators) == ("0.5", "2", "A100:1")
    assert dict(spec.envs) == {"EPOCHS": "3"}
    assert list(spec.resources.ports) == ["8080"]
    assert "****" in repr(task) and "'x'" not in repr(task)


def test_coerce_tells_yaml_from_commands(tmp_path: pathlib.Path) -> None:
    assert Task.coerce("echo a: b").run == "echo a: b"
    assert Task.coerce("echo hi").run == "echo hi"
    assert Task.coerce("run: echo hi\nname: x\n").name == "x"
    path = tmp_path / "x.yaml"
    path.write_text("name: from-file\n")
    assert Task.coerce(str(path)).name == "from-file"
    with pytest.raises(FileNotFoundError):
        Task.coerce(str(tmp_path / "missing.yaml"))
    task = Task(run="x")
    assert Task.coerce(task) is task


def test_the_examples_parse() -> None:
    examples = pathlib.Path(__file__).resolve().parents[3] / "examples"
    for path in sorted(examples.glob("*.yaml")):
        task = Task.from_yaml(str(path), envs={"MODEL": "m"}, secrets={"HF_TOKEN": "t"})
        assert task.to_proto().num_nodes >= 1, path


def test_yaml_with_a_typo_is_not_taken_for_a_command() -> None:
    with pytest.raises(ValueError, match="unknown field `bogus`"):
        Task.coerce("name: x\nrun: echo hi\nbogus: 1\n")


@pytest.mark.parametrize(
    "value, strategy, restarts",
    [
        ("failover", "failover", 0),
        ("EAGER_NEXT_REGION", "EAGER_NEXT_REGION", 0),
        ("{strategy: eager_next_region, max_restarts_on_errors: 3}", "eager_next_region", 3),
        ("{max_restarts_on_errors: 100}", "", 100),
        ("{strategy: null, max_restarts_on_errors: null}", "", 0),
    ],
)
def test_job_recovery_forms(value: str, strategy: str, restarts: int) -> None:
    task = Task.from_yaml(f"resources:\n  job_recovery: {value}\n")
    assert task.job_recovery == JobRecovery(strategy, restarts)
    recovery = task.to_proto().resources.job_recovery
    assert (recovery.strategy, recovery.max_restarts_on_errors) == (strategy, restarts)


@pytest.mark.parametrize(
    "value, message",
    [
        ("SPOT_MAGIC", '`resources.job_recovery.strategy`: "SPOT_MAGIC" is not a recovery strategy; use one of'),
        (
            "{max_restarts_on_errors: -1}",
            "`resources.job_recovery.max_restarts_on_errors`: must be from 0 to 100, not -1",
        ),
        ("{max_restarts_on_errors: 101}", "`resources.job_recovery.max_restarts_on_errors`: must be from 0 to 100"),
        ("{max_restarts_on_errors: 1.5}", "`resources.job_recovery.max_restarts_on_errors`: must be a whole number"),
        ("{max_restarts_on_errors: lots}", "`resources.job_recovery.max_restarts_on_errors`: must be a whole number"),
        ("{retries: 1}", "unknown field `resources.job_recovery.retries`"),
        ("{strategy: 3}", "`resources.job_recovery.strategy`: must be a string"),
        ("7", "`resources.job_recovery`: must be a strategy name or {strategy, max_restarts_on_errors}"),
        ("[FAILOVER]", "`resources.job_recovery`: must be a strategy name"),
    ],
)
def test_bad_job_recovery_names_the_field(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Task.from_yaml(f"resources:\n  job_recovery: {value}\n")
    assert message in str(info.value)


def test_job_recovery_in_code() -> None:
    assert Task(run="x").to_proto().resources.HasField("job_recovery") is False
    task = Task(run="x", job_recovery={"strategy": "FAILOVER", "max_restarts_on_errors": 2})
    assert task.job_recovery == JobRecovery("FAILOVER", 2)
    assert Task(run="x", job_recovery="eager_next_region").job_recovery == JobRecovery("eager_next_region", 0)
    with pytest.raises(ValueError, match="max_restarts_on_errors"):
        Task(run="x", job_recovery=JobRecovery("FAILOVER", -1))


def test_a_pipeline_is_tasks_separated_by_dashes_with_an_optional_name_header(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text("name: pipe\n---\nname: a\nrun: echo a\nworkdir: code\n---\nname: b\nrun: echo b\n")
    pipeline = Pipeline.from_yaml(path)
    assert pipeline.name == "pipe" and [task.name for task in pipeline.tasks] == ["a", "b"]
    assert pipeline.tasks[0].workdir == str(tmp_path / "code")
    assert [spec.run for spec in pipeline.to_proto()] == ["echo a", "echo b"]
    # A single task: its `name` names the task, not a pipeline.
    single = Pipeline.from_yaml("name: only\nrun: echo\n")
    assert (single.name, [task.name for task in single.tasks]) == ("", ["only"])
    # envs apply to every task; required ones must be given.
    text = "envs: {MODEL: null}\nrun: echo $MODEL\n---\nrun: echo two\n"
    assert [task.envs for task in Pipeline.from_yaml(text, envs={"MODEL": "m"}).tasks] == [{"MODEL": "m"}] * 2
    with pytest.raises(ValueError, match="envs.MODEL"):
        Pipeline.from_yaml(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("run: a\n---\nrun: b\nbogus: 1\n", "task 2 of the pipeline: unknown field `bogus`"),
        (
            "run: a\n---\nresources:\n  job_recovery: {max_restarts_on_errors: -2}\n",
            "task 2 of the pipeline: `resources.job_recovery.max_restarts_on_errors`",
        ),
        ("run: a\n---\n- a list\n", "task 2 of the pipeline: the task YAML must be a mapping"),
        ("nmae: x\n---\nrun: b\n", "unknown field `nmae`"),
        ("run: x\n---\n" * 33, "the pipeline has more than 32 tasks"),
        ("run: [a\n---\nrun: b\n", "malformed"),
    ],
)
def test_malformed_pipelines_name_the_task_and_field(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Pipeline.from_yaml(text)
    assert message in str(info.value)


def test_pipeline_coerce_takes_what_jobs_launch_takes(tmp_path: pathlib.Path) -> None:
    assert Pipeline.coerce("echo hi").tasks == [Task(run="echo hi")]
    assert Pipeline.coerce(Task(run="x")).tasks == [Task(run="x")]
    assert Pipeline.coerce(["echo a", Task(run="b")]).tasks == [Task(run="echo a"), Task(run="b")]
    assert [t.run for t in Pipeline.coerce("run: a\n---\nrun: b\n").tasks] == ["a", "b"]
    path = tmp_path / "p.yaml"
    path.write_text("name: n\n---\nrun: a\n---\nrun: b\n")
    assert Pipeline.coerce(path).name == "n" and Pipeline.coerce(str(path)).name == "n"
    pipeline = Pipeline([Task(run="a")], name="x")
    assert Pipeline.coerce(pipeline) is pipeline
    with pytest.raises(FileNotFoundError):
        Pipeline.coerce(str(tmp_path / "missing.yaml"))
