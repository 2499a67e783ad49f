"""Sending a workdir or a file mount's source to an API server that runs
elsewhere.

`scan` lists a tree as SkyPilot would sync it (``.skyignore`` when the tree
has one at its top, else its ``.gitignore`` rules; modes kept; links sent as
links) and hashes its files. The clients' ``upload`` then asks the server
which contents it lacks (FindMissingBlobs), streams only those (UploadBlobs,
read from disk in chunks of at most 1 MiB) and records the tree
(CreateTree), whose reference (``sky-upload://<digest>``) replaces the path
in the task.

``Client.launch`` and ``Client.exec`` (and their asyncio twins) do this for
the task's workdir and file mount sources when the server runs elsewhere: its
mode is DEPLOY, or its endpoint is not on this host. A local server on this
host reads the paths itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Set, Tuple

import pathspec

from ._gen.skypilot.v1 import clusters_pb2, server_pb2, uploads_pb2

#: Bytes per UploadBlobs data message (and per read while hashing).
CHUNK_BYTES = 1 << 20
#: Digests per FindMissingBlobs call.
DIGESTS_PER_CALL = 10_000
#: What an upload's reference starts with.
REFERENCE_PREFIX = "sky-upload://"
#: The ignore file that, at the top of a tree, replaces its .gitignore rules.
SKYIGNORE = ".skyignore"
GITIGNORE = ".gitignore"

logger = logging.getLogger("skypilot_client.uploads")


class UploadError(Exception):
    """A tree that cannot be uploaded: unreadable, missing, holding something
    other than files, folders and links, or over the server's limit."""


@dataclass
class Tree:
    """A tree ready to upload: its entries, and where each file's content is here."""

    entries: List[uploads_pb2.TreeEntry] = field(default_factory=list)
    #: For each file entry, its index in `entries` and its path on this machine.
    files: List[Tuple[int, str]] = field(default_factory=list)
    single_file: bool = False
    #: Its files' total size.
    bytes: int = 0

    @property
    def file_count(self) -> int:
        return len(self.files)

    def digests(self) -> List[str]:
        """The distinct contents of its files, sorted."""
        return sorted({self.entries[index].digest for index, _ in self.files})

    def to_send(self, missing: Set[str]) -> List[Tuple[str, int, str]]:
        """``(digest, size, local path)`` of one file per missing content."""
        wanted = set(missing)
        chosen = []
        for index, path in self.files:
            entry = self.entries[index]
            if entry.digest in wanted:
                wanted.discard(entry.digest)
                chosen.append((entry.digest, entry.size, path))
        return chosen

    def create_request(self) -> uploads_pb2.CreateTreeRequest:
        return uploads_pb2.CreateTreeRequest(entries=self.entries, single_file=self.single_file)


@dataclass(frozen=True)
class Uploaded:
    """What one upload did."""

    #: What was uploaded, e.g. ``"workdir"`` or ``"file mount ~/data"`` (empty for `upload`).
    what: str
    #: The local path, as given.
    path: str
    #: Goes in the task in place of the path.
    reference: str
    #: The tree's files and their total size.
    files: int
    bytes: int
    #: Contents sent (the server had the rest).
    sent_files: int
    sent_bytes: int

    @property
    def message(self) -> str:
        """``Uploaded workdir PATH (SIZE, N files): sent X in Y file(s).``, as the CLI says it."""
        name = f"{self.what} {self.path}" if self.what else self.path
        plural = "" if self.files == 1 else "s"
        head = f"Uploaded {name} ({human_bytes(self.bytes)}, {self.files} file{plural})"
        if self.sent_files == 0:
            return f"{head}: unchanged, nothing sent."
        return f"{head}: sent {human_bytes(self.sent_bytes)} in {self.sent_files} file(s)."


OnUpload = Callable[[Uploaded], None]


def human_bytes(count: int) -> str:
    """``"12.4 MB"`` (decimal units)."""
    units = ("B", "KB", "MB", "GB", "TB")
    value, unit = float(count), 0
    while value >= 1000.0 and unit < len(units) - 1:
        value /= 1000.0
        unit += 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {units[unit]}"


# -- scanning -----------------------------------------------------------------


def scan(path: str, max_bytes: Optional[int] = None) -> Tree:
    """Lists and hashes ``path`` (a folder, or one file) as it will be sent.

    Raises `UploadError` when it cannot be read, holds a socket, FIFO or
    device, has a name that is not UTF-8, or holds more than ``max_bytes``
    (None: no limit); the size is checked before the files are hashed.
    """
    local = os.path.expanduser(os.fspath(path))
    try:
        info = os.stat(local)
    except OSError as err:
        raise UploadError(f"cannot read {path}: {err.strerror or err}") from None
    tree = Tree(single_file=not stat.S_ISDIR(info.st_mode))
    limit = max_bytes if max_bytes is not None and max_bytes > 0 else None
    if tree.single_file:
        if not stat.S_ISREG(info.st_mode):
            raise UploadError(f"{path} is neither a file nor a folder (a socket, FIFO or device)")
        name = os.path.basename(os.path.normpath(local))
        _add_file(tree, _utf8(name, local), local, info, path, limit)
        return tree
    _Walk(tree, local, path, limit).folder("", [])
    return tree


def _utf8(name: str, local: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UploadError(f"{os.fsdecode(local)!r}: only UTF-8 file names can be sent") from None
    return name


def _add_file(tree: Tree, name: str, local: str, info: os.stat_result, shown: str, limit: Optional[int]) -> None:
    tree.bytes += info.st_size
    if limit is not None and tree.bytes > limit:
        raise UploadError(
            f"{shown} holds more than the API server takes in one upload "
            f"({human_bytes(tree.bytes)} > {human_bytes(limit)}): leave large files and folders out "
            f"with a {SKYIGNORE} file (same syntax as .gitignore) in it"
        )
    tree.files.append((len(tree.entries), local))
    tree.entries.append(
        uploads_pb2.TreeEntry(
            path=name,
            kind=uploads_pb2.ENTRY_KIND_FILE,
            mode=info.st_mode & 0o777,
            digest=_hash_file(local),
            size=info.st_size,
        )
    )


def _hash_file(local: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(local, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as err:
        raise UploadError(f"cannot read {local}: {err.strerror or err}") from None
    return digest.hexdigest()


# Ignore rules met on the way down: (folder, relative to the top, with a
# trailing "/" or ""; its rules).
_Rules = List[Tuple[str, pathspec.GitIgnoreSpec]]


class _Walk:
    """A depth-first walk, in name order, that follows no link and skips what
    the ignore files say (``.skyignore`` files when the top has one, else
    ``.gitignore`` files; each applies to its folder, the deepest decides)."""

    def __init__(self, tree: Tree, top: str, shown: str, limit: Optional[int]) -> None:
        self.tree = tree
        self.top = top
        self.shown = shown
        self.limit = limit
        self.ignore_file = SKYIGNORE if os.path.isfile(os.path.join(top, SKYIGNORE)) else GITIGNORE

    def folder(self, relative: str, rules: _Rules) -> None:
        local = os.path.join(self.top, relative) if relative else self.top
        spec = self._rules_in(local)
        if spec is not None:
            rules = rules + [(relative + "/" if relative else "", spec)]
        try:
            with os.scandir(local) as listing:
                children = sorted(listing, key=lambda child: child.name)
        except OSError as err:
            raise UploadError(f"cannot read {local}: {err.strerror or err}") from None
        for child in children:
            name = f"{relative}/{child.name}" if relative else child.name
            try:
                info = child.stat(follow_symlinks=False)
            except OSError as err:
                raise UploadError(f"cannot read {child.path}: {err.strerror or err}") from None
            is_dir = stat.S_ISDIR(info.st_mode)
            if _ignored(rules, name, is_dir):
                continue
            name = _utf8(name, child.path)
            entry = uploads_pb2.TreeEntry(path=name, mode=info.st_mode & 0o777)
            if stat.S_ISLNK(info.st_mode):
                entry.kind = uploads_pb2.ENTRY_KIND_SYMLINK
                entry.link_target = _utf8(_read_link(child.path), child.path)
                self.tree.entries.append(entry)
            elif is_dir:
                entry.kind = uploads_pb2.ENTRY_KIND_DIRECTORY
                self.tree.entries.append(entry)
                self.folder(name, rules)
            elif stat.S_ISREG(info.st_mode):
                _add_file(self.tree, name, child.path, info, self.shown, self.limit)
            else:
                raise UploadError(
                    f"{child.path} is not a file, folder or link (a socket, FIFO or device): "
                    f"leave it out ({SKYIGNORE})"
                )

    def _rules_in(self, folder: str) -> Optional[pathspec.GitIgnoreSpec]:
        path = os.path.join(folder, self.ignore_file)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                return pathspec.GitIgnoreSpec.from_lines(handle.read().splitlines())
        except OSError as err:
            raise UploadError(f"cannot read {path}: {err.strerror or err}") from None


def _read_link(local: str) -> str:
    try:
        return os.readlink(local)
    except OSError as err:
        raise UploadError(f"cannot read {local}: {err.strerror or err}") from None


def _ignored(rules: _Rules, name: str, is_dir: bool) -> bool:
    """Whether the ignore rules leave out ``name`` (relative to the top)."""
    for base, spec in reversed(rules):
        if not name.startswith(base):
            continue
        result = spec.check_file(name[len(base) :] + ("/" if is_dir else ""))
        if result.include is not None:
            return bool(result.include)
    return False


# -- sending ------------------------------------------------------------------


def digest_batches(digests: List[str]) -> Iterator[List[str]]:
    """The digests in FindMissingBlobs-sized batches."""
    for start in range(0, len(digests), DIGESTS_PER_CALL):
        yield digests[start : start + DIGESTS_PER_CALL]


class BlobStream:
    """The UploadBlobs messages of the contents to send: for each, a header,
    then its bytes read lazily from disk in chunks of at most `CHUNK_BYTES`.
    A file that cannot be read ends the stream early (the server then keeps
    nothing of that content) and `check` raises its error."""

    def __init__(self, to_send: List[Tuple[str, int, str]]) -> None:
        self.to_send = to_send
        self.error: Optional[UploadError] = None

    def __iter__(self) -> Iterator[uploads_pb2.UploadBlobsRequest]:
        for digest, size, local in self.to_send:
            yield uploads_pb2.UploadBlobsRequest(header=uploads_pb2.BlobHeader(digest=digest, size=size))
            try:
                handle = open(local, "rb")
            except OSError as err:
                self.error = UploadError(f"reading the files to upload: cannot read {local}: {err.strerror or err}")
                return
            with handle:
                left = size
                while left > 0:
                    try:
                        data = handle.read(min(CHUNK_BYTES, left))
                    except OSError as err:
                        self.error = UploadError(f"reading the files to upload: {local}: {err.strerror or err}")
                        return
                    if not data:
                        self.error = UploadError(f"{local} changed while it was being uploaded: try again")
                        return
                    left -= len(data)
                    yield uploads_pb2.UploadBlobsRequest(data=data)

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def report(
    what: str, path: str, tree: Tree, reference: str, to_send: List[Tuple[str, int, str]], on_upload: Optional[OnUpload]
) -> Uploaded:
    """The record of a finished upload, logged (INFO) and passed to ``on_upload``."""
    uploaded = Uploaded(
        what=what,
        path=path,
        reference=reference,
        files=tree.file_count,
        bytes=tree.bytes,
        sent_files=len(to_send),
        sent_bytes=sum(size for _, size, _ in to_send),
    )
    logger.info("%s", uploaded.message)
    if on_upload is not None:
        on_upload(uploaded)
    return uploaded


# -- which tasks upload -------------------------------------------------------


def is_reference(source: str) -> bool:
    return source.startswith(REFERENCE_PREFIX)


def runs_elsewhere(info: server_pb2.GetServerInfoResponse, host: str) -> bool:
    """Whether the server cannot read this machine's paths: it is a team
    deployment, or its endpoint is not on this host."""
    if info.mode == server_pb2.SERVER_MODE_DEPLOY:
        return True
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def upload_limit(info: server_pb2.GetServerInfoResponse) -> Optional[int]:
    """The server's limit on one upload; None when it sets none."""
    return info.upload_max_bytes if info.upload_max_bytes > 0 else None


def sources(task: clusters_pb2.TaskSpec) -> List[Tuple[str, str, Optional[str]]]:
    """``(what, path, mount destination or None)`` of the task's local
    sources: its workdir, then its file mounts by destination. References
    already in the task are left as they are."""
    found: List[Tuple[str, str, Optional[str]]] = []
    if task.workdir and not is_reference(task.workdir):
        found.append(("workdir", task.workdir, None))
    for dest in sorted(task.file_mounts):
        source = task.file_mounts[dest]
        if source and not is_reference(source):
            found.append((f"file mount {dest}", source, dest))
    return found


def replace_source(task: clusters_pb2.TaskSpec, dest: Optional[str], reference: str) -> None:
    """Puts ``reference`` in the task in place of the workdir (``dest`` None) or a mount's source."""
    if dest is None:
        task.workdir = reference
    else:
        task.file_mounts[dest] = reference

