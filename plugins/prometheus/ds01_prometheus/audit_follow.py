"""Reading the audit log incrementally: each call returns the events appended since the last one.

The exporter counts events from every process (the daemon, ``ds01-gateway``, ``ds01-api``, root
CLI commands) by reading what they append to the one audit log, a little after each cycle. It
keeps the log open and remembers where it stopped (the open file is the inode, its position the
offset), so each call reads only new bytes. The log is rotated by rename (``events.jsonl`` →
``events.jsonl.1``, a new file made by the next write): the renamed file is read to its end once
more on the next call too (a writer that opened it just before the rename may still add its
line), and the new one from its start. A file truncated in place is read again from its start.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: at most this many bytes are read per call, so a flood of events never stalls a cycle
MAX_READ = 16 * 1024 * 1024


class _Open:
    """One file being read: its handle, its inode and the unfinished last line."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino
        self.pending = b""

    def read(self) -> list[bytes]:
        *lines, self.pending = (self.pending + self.handle.read(MAX_READ)).split(b"\n")
        return lines

    def close(self) -> None:
        self.handle.close()


class AuditFollower:
    """The audit log at ``path``, followed from its end as it is now (``from_start``: from
    the start of the live file)."""

    def __init__(self, path: str | Path, *, from_start: bool = False):
        self.path = Path(path)
        self._live: _Open | None = self._open()
        self._retired: list[_Open] = []  # renamed away; read once more, then closed
        if self._live is not None and not from_start:
            self._live.handle.seek(0, os.SEEK_END)

    def _open(self) -> _Open | None:
        try:
            return _Open(open(self.path, "rb"))
        except FileNotFoundError:
            return None

    def read(self) -> list[dict[str, Any]]:
        """The events appended since the last call (lines that are not JSON objects skipped)."""
        raw: list[bytes] = []
        for old in self._retired:
            raw += old.read()
            old.close()
        self._retired = []
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        live = self._live
        if stat is not None and (live is None or stat.st_ino != live.inode):
            if live is not None:  # rotated: what is left of the old file first
                raw += live.read()
                self._retired.append(live)
            self._live = live = self._open()  # a new file: every line of it is new
        elif live is not None and stat is not None and stat.st_size < live.handle.tell():
            live.close()  # truncated in place: what it held is gone
            self._live = live = self._open()
        if live is not None:
            raw += live.read()
        return [record for line in raw if (record := _record(line)) is not None]

    def close(self) -> None:
        for handle in [*self._retired, *([self._live] if self._live else [])]:
            handle.close()
        self._retired, self._live = [], None


def _record(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        log.debug("audit log: a line that is not JSON skipped")
        return None
    return record if isinstance(record, dict) else None
