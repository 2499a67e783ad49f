"""Uploads: a client of a server that runs elsewhere (``--deploy``) sends
the task's workdir and file mounts, and the job runs what was sent."""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import re
import shutil
import uuid
from typing import Iterator, List

import grpc
import pytest

from skypilot_client import Client, SkyError, Task, UploadError, Uploaded, uploads, v1
from skypilot_client.testing import LocalServer

#: A deployed server that requires no credentials, on loopback: what makes
#: the client upload is its mode alone.
TEAM_FLAGS = ["--deploy", "--insecure-no-auth", "--host", "127.0.0.1"]


def team_server(*flags: str) -> LocalServer:
    return LocalServer(local_infra="shared-server-identity", extra_args=TEAM_FLAGS + list(flags))


@pytest.fixture(scope="module")
def team() -> Iterator[LocalServer]:
    with team_server() as server:
        yield server


def project(root: pathlib.Path, tag: str) -> pathlib.Path:
    """A workdir as a user has it: code, an executable script, a file
    .gitignore leaves out and one of several MiB (sent in chunks). Every
    content is new to the server (``tag``)."""
    (root / "sub").mkdir(parents=True)
    (root / ".gitignore").write_text(f"# {tag}\nsecret.txt\n")
    (root / "secret.txt").write_text("not to be sent\n")
    (root / "sub" / "code.py").write_text(f"print('{tag}')\n")
    (root / "run.sh").write_text(f"#!/bin/sh\n# {tag}\necho run.sh ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "big.bin").write_bytes(os.urandom(2 * uploads.CHUNK_BYTES + 12345))
    return root


RUN = (
    "./run.sh; cat sub/code.py ~/inputs/notes.txt; stat -c 'mode %a' run.sh; sha256sum big.bin; "
    "ls secret.txt 2>&1 | sed 's/^/ls: /'"
)


def check_output(output: str, root: pathlib.Path, tag: str) -> None:
    assert "run.sh ran" in output and f"print('{tag}')" in output, output
    assert f"notes {tag}" in output and "mode 755" in output, output
    assert hashlib.sha256((root / "big.bin").read_bytes()).hexdigest() in output, output
    assert "ls: " in output and "No such file" in output, f"the ignored file was sent:\n{output}"


def down(client: Client, cluster: str) -> None:
    client.down(cluster).result(timeout=120)


def test_launch_uploads_the_workdir_and_a_file_mount_and_the_job_runs_them(
    team: LocalServer, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skypilot_client.uploads")
    tag = uuid.uuid4().hex
    root = project(tmp_path / "project", tag)
    notes = tmp_path / "notes.txt"
    notes.write_text(f"notes {tag}\n")
    task = Task(run=RUN, cpus=0.5, workdir=str(root), file_mounts={"~/inputs/notes.txt": str(notes)})
    cluster = f"py-up-{tag[:8]}"
    seen: List[Uploaded] = []
    with team.client() as client:
        assert client.server_info().mode == v1.ServerMode.SERVER_MODE_DEPLOY
        try:
            launched = client.launch(task, cluster, on_upload=seen.append).result(timeout=120)
            check_output(client.job_logs(cluster, launched.job_id).text(), root, tag)
            workdir, mount = seen
            assert (workdir.what, workdir.path) == ("workdir", str(root))
            # .gitignore, run.sh, big.bin and sub/code.py: not secret.txt.
            assert (workdir.files, workdir.sent_files) == (4, 4)
            assert workdir.sent_bytes == workdir.bytes and workdir.reference.startswith("sky-upload://")
            assert workdir.message.startswith(f"Uploaded workdir {root} (") and "sent" in workdir.message
            assert (mount.what, mount.files, mount.sent_files) == ("file mount ~/inputs/notes.txt", 1, 1)
            assert caplog.messages == [workdir.message, mount.message]

            # The same tree again sends nothing and names the same upload.
            again: List[Uploaded] = []
            reference = client.upload(root, on_upload=again.append)
            assert reference == workdir.reference
            assert (again[0].sent_files, again[0].sent_bytes) == (0, 0)
            assert again[0].message.endswith(": unchanged, nothing sent.")

            # The folder goes away: what runs is what was sent.
            shutil.rmtree(root)
            task = Task(run="cat sub/code.py; ls", workdir=reference)
            executed = client.exec(cluster, task, on_upload=again.append).result(timeout=120)
            output = client.job_logs(cluster, executed.job_id).text()
            assert f"print('{tag}')" in output and "secret.txt" not in output, output
            assert len(again) == 1, "a reference is not uploaded again"
        finally:
            down(client, cluster)


async def test_the_async_client_uploads_too(team: LocalServer, tmp_path: pathlib.Path) -> None:
    tag = uuid.uuid4().hex
    root = project(tmp_path / "project", tag)
    notes = tmp_path / "notes.txt"
    notes.write_text(f"notes {tag}\n")
    task = Task(run=RUN, cpus=0.5, workdir=str(root), file_mounts={"~/inputs/notes.txt": str(notes)})
    cluster = f"py-up-{tag[:8]}"
    seen: List[Uploaded] = []
    async with team.async_client() as client:
        try:
            launched = await (await client.launch(task, cluster, on_upload=seen.append)).result(timeout=120)
            check_output(await client.job_logs(cluster, launched.job_id).text(), root, tag)
            assert [(u.what, u.sent_files) for u in seen] == [("workdir", 4), ("file mount ~/inputs/notes.txt", 1)]

            # exec uploads too; only the changed file is sent.
            (root / "sub" / "code.py").write_text(f"print('changed {tag}')\n")
            executed = await (await client.exec(cluster, task, on_upload=seen.append)).result(timeout=120)
            assert "changed" in await client.job_logs(cluster, executed.job_id).text()
            assert [(u.what, u.sent_files) for u in seen[2:]] == [("workdir", 1), ("file mount ~/inputs/notes.txt", 0)]
            assert await client.upload(root) == seen[2].reference
        finally:
            await (await client.down(cluster)).result(timeout=120)


def test_a_managed_job_uploads_each_task_s_sources(team: LocalServer, tmp_path: pathlib.Path) -> None:
    """Every task of a pipeline gets its workdir and file mounts uploaded,
    and the job's clusters run what was sent."""
    tag = uuid.uuid4().hex
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "which.txt").write_text(f"{folder.name} {tag}\n")
    notes = tmp_path / "notes.txt"
    notes.write_text(f"notes {tag}\n")
    (tmp_path / "pipeline.yaml").write_text(
        "name: uploaded\n---\n"
        "run: cat which.txt ~/notes.txt\nworkdir: first\nfile_mounts:\n  ~/notes.txt: notes.txt\n---\n"
        "run: cat which.txt\nworkdir: second\n"
    )
    seen: List[Uploaded] = []
    with team.client() as client:
        launched = client.jobs_launch(str(tmp_path / "pipeline.yaml"), on_upload=seen.append).result(timeout=120)
        assert [(u.what, u.path) for u in seen] == [
            ("workdir", str(first)),
            ("file mount ~/notes.txt", str(notes)),
            ("workdir", str(second)),
        ]
        job = client.jobs_wait(launched.job_id, timeout=180)
        assert job.status == v1.ManagedJobStatus.MANAGED_JOB_STATUS_SUCCEEDED, job
        output = client.jobs_logs(launched.job_id).text()
        assert f"first {tag}" in output and f"notes {tag}" in output and f"second {tag}" in output, output


def stored_files(server: LocalServer) -> List[str]:
    """The files the server keeps for uploads."""
    top = os.path.join(server.data_dir, "uploads")
    return [os.path.join(folder, name) for folder, _, names in os.walk(top) for name in names]


def test_a_tree_over_the_limit_or_missing_is_refused_before_anything_is_sent(tmp_path: pathlib.Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "big.bin").write_bytes(b"\1" * (2 << 20))
    seen: List[Uploaded] = []
    with team_server("--upload-max-mib", "1") as server, server.client() as client:
        assert client.server_info().upload_max_bytes == 1 << 20
        with pytest.raises(UploadError) as refused:
            client.launch(Task(run="true", workdir=str(big)), "py-big", on_upload=seen.append)
        assert "2.1 MB > 1.0 MB" in str(refused.value) and ".skyignore" in str(refused.value)
        with pytest.raises(UploadError, match="2.1 MB > 1.0 MB"):
            client.upload(big / "big.bin", on_upload=seen.append)

        missing = tmp_path / "nowhere"
        with pytest.raises(UploadError, match=re.escape(f"cannot read {missing}: No such file or directory")):
            client.launch(Task(run="true", file_mounts={"~/x": str(missing)}), "py-gone", on_upload=seen.append)

        assert seen == [] and stored_files(server) == [], "nothing was sent"
        assert client.status(all_users=True) == [], "nothing was launched"


async def test_refusals_while_streaming_raise_and_keep_nothing_half(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / name).write_bytes(os.urandom(800_000))
    with team_server("--upload-quota-mib-per-user", "1") as server, server.client() as client:
        # The second content does not fit the user's quota: the server ends the stream.
        with pytest.raises(SkyError) as refused:
            client.upload(folder)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in refused.value.message
        async with server.async_client() as async_client:
            with pytest.raises(SkyError, match="quota"):
                await async_client.upload(folder)
        assert len(stored_files(server)) == 1, "only the whole content is kept"

        # A file that shrinks after it was listed: the upload fails, naming it.
        (folder / "b").unlink()
        (folder / "c").write_bytes(os.urandom(1000))
        tree = uploads.scan(str(folder))
        (folder / "c").write_bytes(b"short")
        monkeypatch.setattr(uploads, "scan", lambda path, limit: tree)
        with pytest.raises(UploadError, match="c changed while it was being uploaded"):
            client.upload(folder)
        async with server.async_client() as async_client:
            with pytest.raises(UploadError, match="c changed while it was being uploaded"):
                await async_client.upload(folder)
        assert len(stored_files(server)) == 1


def test_a_local_server_on_this_host_reads_the_paths_itself(
    sky_client: Client, cluster_name: str, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "here.txt").write_text("read in place\n")
    seen: List[Uploaded] = []
    launched = sky_client.launch(
        Task(run="cat here.txt", cpus=0.5, workdir=str(tmp_path)), cluster_name, on_upload=seen.append
    ).result(timeout=120)
    assert sky_client.job_logs(cluster_name, launched.job_id).text() == "read in place\n"
    assert seen == []


# -- listing a tree, without a server -------------------------------------------


def paths(tree: uploads.Tree) -> List[str]:
    return [entry.path for entry in tree.entries]


def test_gitignore_rules_apply_unless_there_is_a_skyignore(tmp_path: pathlib.Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / ".gitignore").write_text("data/\n*.log\n")
    (tmp_path / "logs" / ".gitignore").write_text("!keep.log\n")
    (tmp_path / "logs" / "keep.log").write_text("kept")
    (tmp_path / "logs" / "drop.log").write_text("dropped")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "run.log").write_text("x")
    (tmp_path / "data" / "big.bin").write_text("x")
    (tmp_path / "main.py").symlink_to("train.py")
    tree = uploads.scan(str(tmp_path))
    assert paths(tree) == [".gitignore", "logs", "logs/.gitignore", "logs/keep.log", "main.py", "train.py"]
    link = tree.entries[4]
    assert (link.kind, link.link_target, link.digest) == (v1.EntryKind.ENTRY_KIND_SYMLINK, "train.py", "")
    file = tree.entries[5]
    assert file.digest == hashlib.sha256(b"print(1)\n").hexdigest() and (file.size, file.mode) == (9, 0o644)
    assert tree.entries[1].kind == v1.EntryKind.ENTRY_KIND_DIRECTORY and not tree.single_file

    (tmp_path / ".skyignore").write_text("*.py\nlogs/\n")
    assert paths(uploads.scan(str(tmp_path))) == [".gitignore", ".skyignore", "data", "data/big.bin", "run.log"]


def test_what_cannot_be_sent_is_refused_with_a_clear_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "big").write_bytes(bytes(5000))
    with pytest.raises(UploadError, match=r"5\.0 KB > 4\.0 KB\).*\.skyignore"):
        uploads.scan(str(tmp_path), 4000)
    one = uploads.scan(str(tmp_path / "big"), 1 << 20)
    assert one.single_file and paths(one) == ["big"] and one.bytes == 5000

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UploadError, match="pipe is not a file, folder or link .*leave it out"):
        uploads.scan(str(tmp_path))
    with pytest.raises(UploadError, match="neither a file nor a folder"):
        uploads.scan(str(tmp_path / "pipe"))
    (tmp_path / ".skyignore").write_text("pipe\n")
    assert paths(uploads.scan(str(tmp_path))) == [".skyignore", "big"]

    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad-\xff"), os.O_CREAT | os.O_WRONLY, 0o644))
    with pytest.raises(UploadError, match="only UTF-8 file names can be sent"):
        uploads.scan(str(tmp_path))


def test_contents_are_streamed_in_chunks_of_at_most_one_mib(tmp_path: pathlib.Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(2 * uploads.CHUNK_BYTES + 10))
    (tmp_path / "empty").write_bytes(b"")
    stream = uploads.BlobStream([("d1", 2 * uploads.CHUNK_BYTES + 10, str(big)), ("d2", 0, str(tmp_path / "empty"))])
    messages = list(stream)
    assert [m.WhichOneof("part") for m in messages] == ["header", "data", "data", "data", "header"]
    assert [len(m.data) for m in messages[1:4]] == [uploads.CHUNK_BYTES, uploads.CHUNK_BYTES, 10]
    assert b"".join(m.data for m in messages[1:4]) == big.read_bytes()
    assert (messages[0].header.digest, messages[4].header.size) == ("d1", 0)
    stream.check()


def test_which_servers_get_uploads() -> None:
    local = v1.GetServerInfoResponse(mode=v1.ServerMode.SERVER_MODE_LOCAL)
    deploy = v1.GetServerInfoResponse(mode=v1.ServerMode.SERVER_MODE_DEPLOY)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert not uploads.runs_elsewhere(local, host) and uploads.runs_elsewhere(deploy, host)
    for host in ("10.0.0.5", "sky.example.com"):
        assert uploads.runs_elsewhere(local, host)
