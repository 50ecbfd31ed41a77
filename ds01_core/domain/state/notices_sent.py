"""The notices_sent table: which notice went out about what, so that each is sent only once.

A notice is about a *subject*: a container (its id), a user (their name), or a host process
(``<pid>:<start ticks>``, which a reused pid never matches). ``kind`` says which story the
notice belongs to (``idle``, ``runtime``, ``quota``, ``bare_metal``) and ``threshold`` which
step of it (``0.8``, ``gpu``, ``unauthorised``). Removing a row re-arms that notice.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Literal

import attrs

from ds01_core.domain.model import utc_text

SubjectKind = Literal["container", "user", "process"]


@attrs.frozen
class Subject:
    """What a notice is about."""

    kind: SubjectKind
    key: str

    @classmethod
    def container(cls, container_id: str) -> Subject:
        return cls("container", container_id)

    @classmethod
    def user(cls, name: str) -> Subject:
        return cls("user", name)

    @classmethod
    def process(cls, pid: int, start_ticks: int) -> Subject:
        return cls("process", f"{pid}:{start_ticks}")

    def pid_and_start(self) -> tuple[int, int]:
        """A process subject's (pid, start ticks); ValueError for anything else."""
        if self.kind != "process":
            raise ValueError(f"not a process: {self}")
        pid, start = self.key.split(":")
        return int(pid), int(start)


def first_notice(
    db: sqlite3.Connection, subject: Subject, kind: str, threshold: str, now: dt.datetime
) -> bool:
    """Record that a notice was sent; False if it had been already (each is sent once)."""
    return bool(
        db.execute(
            "INSERT OR IGNORE INTO notices_sent (subject_kind, subject, kind, threshold, sent_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (subject.kind, subject.key, kind, threshold, utc_text(now)),
        ).rowcount
    )


def any_sent(db: sqlite3.Connection, subject: Subject, kind: str) -> bool:
    """Some notice of ``kind`` about ``subject`` went out (and was not re-armed since)."""
    row = db.execute(
        "SELECT 1 FROM notices_sent WHERE subject_kind = ? AND subject = ? AND kind = ? LIMIT 1",
        (subject.kind, subject.key, kind),
    ).fetchone()
    return row is not None


def sent_at(
    db: sqlite3.Connection, subject: Subject, kind: str, threshold: str
) -> dt.datetime | None:
    """When that notice was first sent; None if it never was (or was re-armed since)."""
    row = db.execute(
        "SELECT sent_at FROM notices_sent WHERE subject_kind = ? AND subject = ? AND kind = ? "
        "AND threshold = ?",
        (subject.kind, subject.key, kind, threshold),
    ).fetchone()
    return None if row is None else dt.datetime.fromisoformat(row["sent_at"])


def forget(
    db: sqlite3.Connection, subject: Subject, kind: str, threshold: str | None = None
) -> None:
    """Forget the notices of ``kind`` about ``subject`` (only ``threshold``'s, if given), so
    they are sent again when their moment comes back."""
    query = "DELETE FROM notices_sent WHERE subject_kind = ? AND subject = ? AND kind = ?"
    args: tuple[str, ...] = (subject.kind, subject.key, kind)
    if threshold is not None:
        query += " AND threshold = ?"
        args += (threshold,)
    db.execute(query, args)


def subjects_with(db: sqlite3.Connection, subject_kind: SubjectKind, kind: str) -> list[Subject]:
    """Every subject of ``subject_kind`` with a notice of ``kind`` on record."""
    return [
        Subject(subject_kind, row["subject"])
        for row in db.execute(
            "SELECT DISTINCT subject FROM notices_sent WHERE subject_kind = ? AND kind = ? "
            "ORDER BY subject",
            (subject_kind, kind),
        )
    ]
