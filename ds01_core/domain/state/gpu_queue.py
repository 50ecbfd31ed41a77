"""A fair, first-come wait queue for GPU requests that cannot be served now.

Each waiting request holds a ticket (a row in the state store) and a named pipe. Whoever
releases GPU slots writes one byte to the head's pipe, so the head wakes at once and tries
again; nobody polls. While anyone waits, a request that is not the head is not served, so a
newcomer never overtakes a waiter. A waiter that dies leaves a ticket whose process is gone:
it is skipped and closed by the next reader.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import select
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.domain.model import Event, GpuRequest, utc_text
from ds01_core.domain.state.owner_process import process_alive, process_start_ticks

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


@attrs.frozen
class Ticket:
    ticket: int
    user: str
    container_name: str
    request: dict[str, Any]
    enqueued_at: dt.datetime
    pid: int
    wake_path: str


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        ticket=row["ticket"],
        user=row["user"],
        container_name=row["container_name"],
        request=json.loads(row["request"]),
        enqueued_at=dt.datetime.fromisoformat(row["enqueued_at"]),
        pid=row["pid"],
        wake_path=row["wake_path"],
    )


#: how far back :func:`typical_wait` looks, and how few served requests are too few to say
TYPICAL_WAIT_WINDOW = dt.timedelta(days=7)
TYPICAL_WAIT_MIN_SAMPLES = 3


def typical_wait(db: sqlite3.Connection, now: dt.datetime) -> float | None:
    """The median wait, in seconds, of the requests served from the queue in the last
    :data:`TYPICAL_WAIT_WINDOW` (the latest 50); None with fewer than
    :data:`TYPICAL_WAIT_MIN_SAMPLES` (too few to say)."""
    rows = db.execute(
        "SELECT enqueued_at, left_at FROM gpu_queue WHERE outcome = 'served' AND left_at >= ? "
        "ORDER BY left_at DESC LIMIT 50",
        (utc_text(now - TYPICAL_WAIT_WINDOW),),
    ).fetchall()
    waits = sorted(
        (
            dt.datetime.fromisoformat(r["left_at"]) - dt.datetime.fromisoformat(r["enqueued_at"])
        ).total_seconds()
        for r in rows
    )
    if len(waits) < TYPICAL_WAIT_MIN_SAMPLES:
        return None
    middle = len(waits) // 2
    return waits[middle] if len(waits) % 2 else (waits[middle - 1] + waits[middle]) / 2


def waiting(db: sqlite3.Connection, *, now: dt.datetime | None = None) -> list[Ticket]:
    """Live tickets in queue order; tickets of processes that are gone are closed on the way.

    The caller should hold a write transaction when it acts on the answer."""
    alive = []
    for row in db.execute(
        "SELECT * FROM gpu_queue WHERE left_at IS NULL ORDER BY ticket"
    ).fetchall():
        if process_alive(row["pid"], row["pid_start"]):
            alive.append(_ticket(row))
        elif db.in_transaction:
            db.execute(
                "UPDATE gpu_queue SET left_at = ?, outcome = 'abandoned' WHERE ticket = ?",
                (utc_text(now or dt.datetime.now(dt.UTC)), row["ticket"]),
            )
    return alive


def wake_head(runtime: Runtime) -> bool:
    """Tell the first waiter that something changed; True if one was woken."""
    heads = waiting(runtime.state.db)
    if not heads:
        return False
    try:
        fd = os.open(heads[0].wake_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:  # ENXIO: nobody reading (yet); ENOENT: the waiter is leaving
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, b"!")
    except BlockingIOError:
        pass  # the pipe already holds a wake-up
    finally:
        os.close(fd)
    return True


class Waiter:
    """One request in the queue: holds its ticket and its pipe until it is served or gives up."""

    def __init__(self, runtime: Runtime, request: GpuRequest):
        self.runtime = runtime
        self.request = request
        directory = Path(runtime.config.paths.runtime_dir) / "gpu-queue"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = runtime.now()
        with runtime.state.transaction() as db:
            cursor = db.execute(
                "INSERT INTO gpu_queue (user, container_name, request, enqueued_at, pid, "
                "pid_start, wake_path) VALUES (?, ?, ?, ?, ?, ?, '')",
                (
                    request.user,
                    request.container,
                    json.dumps(attrs.asdict(request)),
                    utc_text(now),
                    os.getpid(),
                    process_start_ticks(os.getpid()),
                ),
            )
            self.ticket = int(cursor.lastrowid or 0)
            self.path = directory / f"{self.ticket}.wake"
            db.execute(
                "UPDATE gpu_queue SET wake_path = ? WHERE ticket = ?", (str(self.path), self.ticket)
            )
        os.mkfifo(self.path, 0o600)
        # read-write: the pipe then always has a writer (us), so select() blocks until a byte
        # arrives instead of reporting end-of-file
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        runtime.events.append(
            Event(
                "gpu.queued",
                request.user,
                "allocation",
                {
                    "container": request.container,
                    "ticket": self.ticket,
                    "position": self.position(),
                },
            )
        )

    def position(self) -> int | None:
        tickets = [t.ticket for t in waiting(self.runtime.state.db)]
        return tickets.index(self.ticket) + 1 if self.ticket in tickets else None

    def wait(self, seconds: float) -> None:
        """Sleep until woken or ``seconds`` pass."""
        readable, _, _ = select.select([self.fd], [], [], max(0.0, seconds))
        if readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 4096)

    def leave(self, outcome: str) -> None:
        with self.runtime.state.transaction() as db:
            db.execute(
                "UPDATE gpu_queue SET left_at = ?, outcome = ? WHERE ticket = ?",
                (utc_text(self.runtime.now()), outcome, self.ticket),
            )
        os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
