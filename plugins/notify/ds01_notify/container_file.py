"""The in-container channel: one line per notice appended to a file the user sees in the
container (default ``/workspace/.ds01-alerts``).

Everything goes through the Docker Engine's archive API (``GET``/``PUT
/containers/{id}/archive``) rather than ``exec``: it works on stopped containers, needs no
shell in the image, and resolves paths inside the container's own filesystem view, so a
symbolic link in the container cannot point the write at the host. The final path component
must not be a link at all; a missing directory is created, owned like the nearest existing one
(typically the user's bind-mounted workspace), so the user can edit and delete the file.

Not atomic against another writer between read and write-back: the daemon is the only writer
in practice, and the worst case is one lost line in a notice file, never a lost notice (the
audit log has every one).
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.api import DeliveryResult, Notice
from ds01_notify.config import ContainerFileConfig
from ds01_notify.text import iso, one_line

if TYPE_CHECKING:
    import docker

    from ds01_core.api import DockerAdapter

#: Go's os.FileMode bits in the engine's path stat
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
#: how much of a directory's archive to read for its own header (then the stream is dropped)
_PROBE_BYTES = 64 * 1024


class NotAppendable(Exception):
    """The file cannot be appended to; the message says why."""


@attrs.frozen
class PathInfo:
    """A path in the container: what the engine's stat says, and its owner from the archive."""

    mode: int
    size: int
    uid: int = 0
    gid: int = 0

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & _MODE_DIR)

    @property
    def is_link(self) -> bool:
        return bool(self.mode & _MODE_SYMLINK)


class _ChunkReader(io.RawIOBase):
    """A readable file over the SDK's chunk generator, for :mod:`tarfile`'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def probe(api: docker.APIClient, container: str, path: str) -> PathInfo | None:
    """What is at ``path`` (None when nothing is), reading only the archive's first header."""
    # lazy: the docker SDK (~55 ms) is loaded when a notice is delivered, not at every CLI start
    import docker.errors

    try:
        chunks, stat = api.get_archive(container, path, chunk_size=_PROBE_BYTES)
    except docker.errors.NotFound:
        return None
    try:
        head = next(iter(chunks), b"")
    finally:
        chunks.close()  # a directory's archive is everything below it: stop the transfer
    uid = gid = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as tar:
            first = tar.next()
            if first is not None:
                uid, gid = first.uid, first.gid
    except tarfile.TarError:
        pass  # owner unknown: root, as the engine would make it
    stat = stat or {}
    return PathInfo(int(stat.get("mode", 0)), int(stat.get("size", 0)), uid, gid)


def read_tail(
    api: docker.APIClient, container: str, path: str, keep: int
) -> tuple[tarfile.TarInfo, bytes]:
    """The file's tar header and its last ``keep`` bytes (memory stays bounded however large
    the file has grown)."""
    chunks, _stat = api.get_archive(container, path)
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise NotAppendable(f"{path} is not a regular file")
            source = tar.extractfile(member)
            assert source is not None
            tail = b""
            while block := source.read(1024 * 1024):
                tail = (tail + block)[-keep:]
    finally:
        chunks.close()
    return member, tail


def trim(data: bytes, limit: int) -> bytes:
    """The newest whole lines of ``data`` within ``limit`` bytes (the tail of the last line,
    if that line alone is longer)."""
    if len(data) <= limit:
        return data
    start = len(data) - limit
    if data[start - 1 : start] == b"\n":
        return data[start:]
    newline = data.find(b"\n", start)
    if newline == -1 or newline == len(data) - 1:
        return data[start:]
    return data[newline + 1 :]


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _entry(
    name: str, *, uid: int, gid: int, mode: int, mtime: float, data: bytes | None = None
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, mtime
    if data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    return info, data


def append_line(
    api: docker.APIClient, container: str, path: str, line: bytes, max_bytes: int, now: float
) -> str:
    """Append ``line`` to ``path`` in ``container``; returns what was done, in words."""
    directory, name = posixpath.split(path)
    existing = probe(api, container, path)
    if existing is not None:
        if existing.is_link:
            raise NotAppendable(f"{path} is a symbolic link; not following it")
        if existing.is_dir:
            raise NotAppendable(f"{path} is a directory")
        member, tail = read_tail(api, container, path, max_bytes)
        data = trim(tail + line, max_bytes)
        entry = _entry(name, uid=member.uid, gid=member.gid, mode=member.mode, mtime=now, data=data)
        api.put_archive(container, directory, _tar([entry]))
        return f"appended to {path}"
    missing: list[str] = []
    base = directory
    while (found := probe(api, container, base)) is None:
        missing.insert(0, posixpath.basename(base))
        base = posixpath.dirname(base)
    if not (found.is_dir or found.is_link):
        raise NotAppendable(f"{base} is not a directory")
    uid, gid = found.uid, found.gid
    entries = [
        _entry("/".join(missing[: i + 1]), uid=uid, gid=gid, mode=0o755, mtime=now)
        for i in range(len(missing))
    ]
    data = trim(line, max_bytes)
    path_in_tar = "/".join([*missing, name])
    entries.append(_entry(path_in_tar, uid=uid, gid=gid, mode=0o644, mtime=now, data=data))
    api.put_archive(container, base, _tar(entries))
    made = f" (made {directory})" if missing else ""
    return f"created {path}{made}"


def format_line(notice: Notice, now: dt.datetime) -> bytes:
    """``2026-03-01T12:00:00Z [warning] GPU idle: …`` on one line, control characters shown."""
    text = f"{iso(now)} [{notice.severity}] {one_line(notice.subject)}: {one_line(notice.message)}"
    return (text + "\n").encode()


@attrs.frozen
class ContainerFileChannel:
    """Appends the notice to ``cfg.path`` in the container the notice is about."""

    cfg: ContainerFileConfig
    engine: DockerAdapter
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    name = "container_file"
    family = "container_file"

    @property
    def timeout(self) -> float:
        return float(self.cfg.timeout)

    def send(self, notice: Notice) -> DeliveryResult:
        container = notice.container
        if not container:
            return DeliveryResult(self.name, False, "the notice is about no container")
        if self.engine.inspect_container(container) is None:
            return DeliveryResult(self.name, False, f"container {container} no longer exists")
        moment = self.now()
        # lazy: the docker SDK (~55 ms) is loaded when a notice is delivered, not at every CLI start
        import docker.errors

        try:
            done = append_line(
                self.engine.api,
                container,
                self.cfg.path,
                format_line(notice, moment),
                int(self.cfg.max_bytes),
                moment.timestamp(),
            )
        except NotAppendable as exc:
            return DeliveryResult(self.name, False, f"container {container}: {exc}")
        except docker.errors.APIError as exc:
            reason = exc.explanation or str(exc)
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            return DeliveryResult(self.name, False, f"container {container}: Docker: {reason}")
        return DeliveryResult(self.name, True, f"{done} in container {container}")
