"""The audit log: append-only JSON Lines, one ``write`` per event, readable across rotations.

Guarantees and why:

- **No torn or interleaved lines.** Each event is serialised first and written with a single
  ``os.write`` on a descriptor opened with ``O_APPEND``: the kernel positions and writes it
  under the inode lock, so concurrent writers (the daemon, root CLI commands) can never mix
  their bytes, whatever the line length.
- **Rotation loses nothing.** The file is opened for every event, so after ``mv events.jsonl
  events.jsonl.1`` the next event creates a fresh file; readers read rotated siblings too.
- **Users cannot forge or erase events.** Files are created mode 0640 in a directory of mode
  0750, owned by root.
- **A bad line never breaks reading.** It is skipped with a warning naming file and line.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ds01_core.model import Event
from ds01_core.units import Duration

log = logging.getLogger(__name__)

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
REQUIRED_KEYS = ("timestamp", "event_type", "user", "source", "details", "schema_version")
FILE_MODE = 0o640
DIR_MODE = 0o750

Warn = Callable[[str], None]


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``2026-11-22``, ``2026-11-22T10:00``, ``…Z``/``+01:00``, or relative: ``30m`` = 30 min ago."""
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    try:
        return now - dt.timedelta(seconds=float(Duration.parse(value)))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO date or time (2026-11-22, 2026-11-22T10:00Z) or an age like "
            f"30m, 2h, 1d; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def event_time(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


def _rotation_key(path: Path, base: str) -> tuple[int, str]:
    suffix = path.name[len(base) + 1 :]
    number = suffix.split(".", 1)[0]
    # events.jsonl.3 is older than events.jsonl.1; dated suffixes sort by name
    return (-int(number), "") if number.isdigit() else (0, suffix)


class EventLog:
    """The audit log at ``path`` (the live file; rotated ones sit beside it)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # -- writing ------------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        if not EVENT_TYPE.match(event.event_type):
            raise ValueError(
                f"event type {event.event_type!r} is not 'category.action' (lower case, dots)"
            )
        line = (
            json.dumps(event.to_json_dict(), separators=(",", ":"), default=str, sort_keys=False)
            + "\n"
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            written = os.write(fd, line)
            # a regular file on a local filesystem takes the whole buffer in one call; the loop
            # only matters if a signal or a full disk cut the write short
            while written < len(line):
                written += os.write(fd, line[written:])
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Rotated files, oldest first, then the live file."""
        base = self.path.name
        rotated = [
            p
            for p in self.path.parent.glob(base + ".*")
            if p.is_file() and not p.name.endswith(".tmp")
        ]
        rotated.sort(key=lambda p: _rotation_key(p, base))
        return [*rotated, *([self.path] if self.path.exists() else [])]

    @staticmethod
    def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                yield from enumerate(handle, start=1)
        except FileNotFoundError:
            return

    @staticmethod
    def parse_line(raw: bytes, where: str, warn: Warn) -> dict[str, Any] | None:
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
        try:
            event_time(record)
        except (TypeError, ValueError):
            warn(f"{where}: unreadable timestamp, skipped")
            return None
        return record

    def read(self, warn: Warn | None = None) -> Iterator[dict[str, Any]]:
        """Every readable event in every file, oldest first."""
        warn = warn or log.warning
        for path in self.files():
            for number, raw in self._lines(path):
                record = self.parse_line(raw, f"{path}:{number}", warn)
                if record is not None:
                    yield record

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
    ) -> list[dict[str, Any]]:
        """Matching events, oldest first; with ``limit``, the last ``limit`` of them."""
        match = matcher(
            user=user, type_prefix=type_prefix, container=container, since=since, until=until
        )
        found = [r for r in self.read(warn) if match(r)]
        return found[-limit:] if limit else found

    def follow(
        self,
        match: Callable[[dict[str, Any]], bool] = lambda _r: True,
        *,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        from_start: bool = False,
        warn: Warn | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield matching events appended from now on (all of them with ``from_start``),
        following the live file across renames: the old file is read to its end first."""
        warn = warn or log.warning
        stop = stop or threading.Event()
        handle = None
        inode = None
        pending = b""
        first_look = True

        def complete_lines(chunk: bytes) -> Iterator[dict[str, Any]]:
            nonlocal pending
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                record = self.parse_line(line, str(self.path), warn)
                if record is not None and match(record):
                    yield record

        try:
            while not stop.is_set():
                try:
                    stat = os.stat(self.path)
                except FileNotFoundError:
                    stat = None
                replaced = stat is not None and (
                    handle is None or stat.st_ino != inode or stat.st_size < handle.tell()
                )
                if replaced:
                    if handle is not None:
                        yield from complete_lines(handle.read() + b"\n")
                        handle.close()
                    handle = open(self.path, "rb")  # noqa: SIM115 - held across iterations
                    inode, pending = stat.st_ino, b""
                    if first_look and not from_start:
                        handle.seek(0, os.SEEK_END)
                first_look = False
                chunk = handle.read() if handle is not None else b""
                if chunk:
                    yield from complete_lines(chunk)
                else:
                    stop.wait(poll_interval)
        finally:
            if handle is not None:
                handle.close()


def matcher(
    *,
    user: str | None = None,
    type_prefix: str | None = None,
    container: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Callable[[dict[str, Any]], bool]:
    """A predicate over event records for the given filters (all must hold)."""

    def match(record: dict[str, Any]) -> bool:
        if user is not None and record.get("user") != user:
            return False
        if type_prefix and not str(record.get("event_type", "")).startswith(type_prefix):
            return False
        if container:
            details = record.get("details") or {}
            names = [details.get(k) for k in ("container", "container_id", "container_name")]
            if not any(
                isinstance(n, str) and (n == container or n.startswith(container)) for n in names
            ):
                return False
        if since is not None or until is not None:
            moment = event_time(record)
            if since is not None and moment < since:
                return False
            if until is not None and moment > until:
                return False
        return True

    return match


def wait_for(
    log_: EventLog, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Poll the log until an event matches (tests and scripts that wait on the daemon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in log_.read(warn=lambda _m: None):
            if predicate(record):
                return record
        time.sleep(0.1)
    raise TimeoutError("no matching event")
