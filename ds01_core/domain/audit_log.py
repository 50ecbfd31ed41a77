"""The audit log: append-only JSON Lines, one ``write`` per event, readable across rotations.

Guarantees and why:

- **No torn or interleaved lines.** Each event is serialised first and written with a single
  ``os.write`` on a descriptor opened with ``O_APPEND``: on a local filesystem the kernel moves
  to the end and copies the whole buffer under the inode lock, so concurrent writers (the
  daemon, root CLI commands) never mix their bytes, whatever the line length (``PIPE_BUF``
  only bounds pipes). Network filesystems (NFS) do not promise this: keep the log local.
- **Rotation loses nothing.** The file is opened for every event, so after ``mv events.jsonl
  events.jsonl.1`` the next event creates a fresh file; readers read rotated siblings too.
- **Users cannot forge or erase events.** Files are created mode 0640 in a directory of mode
  0750, owned by root (the daemon's user).
- **A bad line never breaks reading.** It is skipped with a warning naming file and line.
"""

from __future__ import annotations

import collections
import datetime as dt
import glob
import gzip
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ds01_core.domain.model import Event
from ds01_core.domain.units import Duration

log = logging.getLogger(__name__)

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
REQUIRED_KEYS = ("timestamp", "event_type", "user", "source", "details", "schema_version")
FILE_MODE = 0o640
DIR_MODE = 0o750

Warn = Callable[[str], None]
Record = dict[str, Any]


def parse_time(text: str, now: dt.datetime | None = None, *, local: bool = False) -> dt.datetime:
    """A moment from what a person types, as an aware UTC datetime.

    ``2026-11-22`` (start of that day), ``2026-11-22T10:00``, ``…Z`` / ``…+01:00``, or an age
    such as ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m`` meaning that long before ``now``. A time
    without an offset is UTC, or the machine's local time with ``local=True`` (the CLI's choice,
    since its tables show local times).
    """
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    try:
        return now - dt.timedelta(seconds=float(Duration.parse(value)))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO date or time (2026-11-22, 2026-11-22T10:00Z) or an age like "
            f"30m, 2h, 1d; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        # naive astimezone() reads the moment as system local time, DST included
        moment = moment if local else moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def event_time(record: Record) -> dt.datetime:
    """A record's timestamp, aware; a line written without an offset is taken as UTC, so a
    hand-edited line can never make a naive/aware comparison crash a query."""
    moment = dt.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _rotation_key(path: Path, base: str) -> tuple[int, int, str]:
    """Oldest first: ``events.jsonl.3`` before ``.1`` (logrotate's numbering), then dated or
    other suffixes (``events.jsonl-20261122``, logrotate's dateext) by name."""
    separator, suffix = path.name[len(base)], path.name[len(base) + 1 :]
    number = suffix.split(".", 1)[0]
    if separator == "." and number.isdigit():
        return (0, -int(number), "")
    return (1, 0, suffix)


class EventLog:
    """The audit log at ``path`` (the live file; rotated ones sit beside it).

    Writing opens the file for every event: that is what makes rotation by rename (logrotate
    without ``copytruncate``) lose nothing, since the event after the rename creates a new
    live file instead of landing in a descriptor held on the renamed one. Reading walks the
    rotated siblings (``events.jsonl.2.gz``, ``events.jsonl.1``, ``events.jsonl-20261122``),
    oldest first, then the live file.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # -- writing ------------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Add one event as one line; refuses an ``event_type`` that is not ``category.action``."""
        if not EVENT_TYPE.match(event.event_type):
            raise ValueError(
                f"event type {event.event_type!r} is not 'category.action' "
                f"(lower-case words joined by dots, e.g. gpu.allocated)"
            )
        line = (
            json.dumps(event.to_json_dict(), separators=(",", ":"), default=str) + "\n"
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            # One write per line: with O_APPEND the kernel seeks to the end and copies the whole
            # buffer as one step, so another process's line can never land inside this one.
            # Writing in pieces (or through a buffered file object that flushes in chunks)
            # would let concurrent writers interleave and tear lines. A regular local file
            # takes it all at once; the loop is only for a short write after a signal or a
            # full disk, where finishing the line beats leaving half of it.
            written = os.write(fd, line)
            while written < len(line):
                written += os.write(fd, line[written:])
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Rotated files, oldest first, then the live file."""
        base = self.path.name
        candidates = [
            *self.path.parent.glob(glob.escape(base) + ".*"),
            *self.path.parent.glob(glob.escape(base) + "-*"),  # logrotate dateext
        ]
        rotated = [p for p in candidates if p.is_file() and not p.name.endswith(".tmp")]
        rotated.sort(key=lambda p: _rotation_key(p, base))
        return [*rotated, *([self.path] if self.path.exists() else [])]

    def _open_all(self) -> list[tuple[Path, io.BufferedIOBase]]:
        """Every file opened before any is read: a rotation while we read then renames files
        under open descriptors instead of making us read one twice or skip one."""
        handles: list[tuple[Path, io.BufferedIOBase]] = []
        for path in self.files():
            try:
                handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:  # deleted by rotation since the listing
                continue
            handles.append((path, handle))
        return handles

    @staticmethod
    def parse_line(raw: bytes, where: str, warn: Warn) -> Record | None:
        """One line as an event record, or None (with a warning) when it is not one."""
        if not raw.strip():
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            warn(f"{where}: not JSON, skipped")
            return None
        if not isinstance(record, dict) or any(k not in record for k in REQUIRED_KEYS):
            warn(f"{where}: not an event (missing keys), skipped")
            return None
        if (
            not isinstance(record["event_type"], str)
            or not isinstance(record["details"], dict)
            or not isinstance(record["user"], str | None)
        ):
            warn(f"{where}: not an event (wrong field types), skipped")
            return None
        try:
            event_time(record)
        except (TypeError, ValueError):
            warn(f"{where}: unreadable timestamp, skipped")
            return None
        return record

    def read(self, warn: Warn | None = None) -> Iterator[Record]:
        """Every readable event in every file, oldest first; bad lines go to ``warn`` (default:
        a logging warning naming file and line)."""
        warn = warn or log.warning
        handles = self._open_all()
        try:
            for path, handle in handles:
                number = 0
                try:
                    for number, raw in enumerate(handle, start=1):
                        record = self.parse_line(raw, f"{path}:{number}", warn)
                        if record is not None:
                            yield record
                except (OSError, EOFError) as exc:  # a damaged .gz: keep what was read
                    warn(f"{path}: unreadable after line {number}: {exc}")
        finally:
            for _path, handle in handles:
                handle.close()

    def query(
        self,
        *,
        user: str | None = None,
        type_prefix: str | None = None,
        container: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
        warn: Warn | None = None,
    ) -> list[Record]:
        """Matching events, oldest first; with ``limit``, the last ``limit`` of them."""
        match = matcher(
            user=user, type_prefix=type_prefix, container=container, since=since, until=until
        )
        found: Iterable[Record] = (r for r in self.read(warn) if match(r))
        if limit:  # keep only the tail in memory: the log may hold years
            return list(collections.deque(found, maxlen=limit))
        return list(found)

    def follow(
        self,
        match: Callable[[Record], bool] = lambda _r: True,
        *,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        from_start: bool = False,
        warn: Warn | None = None,
        rotation_grace: float = 2.0,
    ) -> Iterator[Record]:
        """Yield matching events appended from now on (all of the live file's with
        ``from_start``) until ``stop`` is set.

        Follows the live file across rotation: a rename (new inode) switches to the new file,
        and the renamed one is still read for ``rotation_grace`` seconds, since a writer that
        opened it just before the rename may still add its line; a file truncated in place
        is read again from its start.
        """
        warn = warn or log.warning
        stop = stop or threading.Event()
        live: _Tail | None = None
        retired: list[tuple[_Tail, float]] = []
        first_look = True
        try:
            while not stop.is_set():
                try:
                    stat = os.stat(self.path)
                except FileNotFoundError:
                    stat = None
                if stat is not None and (
                    live is None or stat.st_ino != live.inode or stat.st_size < live.position()
                ):
                    fresh = _Tail.open(self.path)
                    if fresh is not None:
                        if live is not None and fresh.inode != live.inode:
                            live.label = f"{self.path} (rotated)"
                            retired.append((live, time.monotonic() + rotation_grace))
                        elif live is not None:  # truncated in place: what it held is gone
                            live.close()
                        live = fresh
                        if first_look and not from_start:
                            live.skip_to_end()
                first_look = False
                got = False
                now = time.monotonic()
                for tail, close_at in list(retired):
                    done = now >= close_at
                    for where, raw in tail.lines(final=done):
                        got = True
                        record = self.parse_line(raw, where, warn)
                        if record is not None and match(record):
                            yield record
                    if done:
                        tail.close()
                        retired.remove((tail, close_at))
                if live is not None:
                    for where, raw in live.lines():
                        got = True
                        record = self.parse_line(raw, where, warn)
                        if record is not None and match(record):
                            yield record
                if not got:
                    stop.wait(poll_interval)
        finally:
            for tail, _close_at in retired:
                tail.close()
            if live is not None:
                live.close()


class _Tail:
    """One file being followed: its descriptor, inode, line count and unfinished last line."""

    def __init__(self, handle: IO[bytes], inode: int, label: str):
        self.handle = handle
        self.inode = inode
        self.label = label
        self.number = 0
        self.pending = b""

    @classmethod
    def open(cls, path: Path) -> _Tail | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - held across polls, closed by close()
        except FileNotFoundError:  # renamed away between stat and open: next poll
            return None
        # the inode of what we opened, not of what stat saw a moment earlier
        return cls(handle, os.fstat(handle.fileno()).st_ino, str(path))

    def position(self) -> int:
        return self.handle.tell()

    def skip_to_end(self) -> None:
        self.handle.seek(0, os.SEEK_END)
        self.number = -1  # line numbers are unknown from here

    def lines(self, final: bool = False) -> list[tuple[str, bytes]]:
        """Complete lines read since last time (the unfinished one too when ``final``)."""
        *complete, self.pending = (self.pending + self.handle.read()).split(b"\n")
        if final and self.pending:
            complete.append(self.pending)
            self.pending = b""
        out = []
        for raw in complete:
            if self.number >= 0:
                self.number += 1
            where = f"{self.label}:{self.number}" if self.number >= 0 else self.label
            out.append((where, raw))
        return out

    def close(self) -> None:
        self.handle.close()


def matcher(
    *,
    user: str | None = None,
    type_prefix: str | None = None,
    container: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Callable[[Record], bool]:
    """A predicate over event records for the given filters (all must hold).

    ``container`` matches ``details.container``, ``container_id`` or ``container_name``
    exactly, or as a prefix (a short id, as ``docker ps`` prints it).
    """

    def match(record: Record) -> bool:
        if user is not None and record.get("user") != user:
            return False
        if type_prefix and not str(record.get("event_type", "")).startswith(type_prefix):
            return False
        if container:
            details = record.get("details")
            details = details if isinstance(details, dict) else {}
            names = [details.get(k) for k in ("container", "container_id", "container_name")]
            if not any(isinstance(n, str) and n.startswith(container) for n in names):
                return False
        if since is not None or until is not None:
            moment = event_time(record)
            if since is not None and moment < since:
                return False
            if until is not None and moment > until:
                return False
        return True

    return match


def wait_for(log_: EventLog, predicate: Callable[[Record], bool], timeout: float) -> Record:
    """Poll the log until an event matches (tests and scripts that wait on the daemon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in log_.read(warn=lambda _m: None):
            if predicate(record):
                return record
        time.sleep(0.1)
    raise TimeoutError("no matching event")
