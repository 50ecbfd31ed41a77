"""The last measured (or reported) usage per filesystem and user, kept in the state store so
``ds01 quota`` and the create path read it without walking a filesystem."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping

from ds01_core.api import utc_text

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS disk_usage (path TEXT NOT NULL, user TEXT NOT NULL, "
    "bytes INTEGER NOT NULL, measured_at TEXT NOT NULL, PRIMARY KEY (path, user))",
    "CREATE TABLE IF NOT EXISTS disk_quota_applied (path TEXT NOT NULL, user TEXT NOT NULL, "
    "limit_bytes INTEGER NOT NULL, PRIMARY KEY (path, user))",
)


def ensure(db: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        db.execute(statement)


def save_usage(
    db: sqlite3.Connection, path: str, usage: Mapping[str, int], now: dt.datetime
) -> None:
    """Replace ``path``'s usage figures with ``usage`` (users no longer present drop out)."""
    ensure(db)
    db.execute("DELETE FROM disk_usage WHERE path = ?", (path,))
    db.executemany(
        "INSERT INTO disk_usage (path, user, bytes, measured_at) VALUES (?, ?, ?, ?)",
        [(path, user, used, utc_text(now)) for user, used in usage.items()],
    )


def last_scan(db: sqlite3.Connection, path: str) -> dt.datetime | None:
    ensure(db)
    row = db.execute("SELECT MAX(measured_at) FROM disk_usage WHERE path = ?", (path,)).fetchone()
    return dt.datetime.fromisoformat(row[0]) if row and row[0] else None


def usage_of(db: sqlite3.Connection, user: str) -> dict[str, tuple[int, dt.datetime]]:
    """path → (bytes, measured at) for ``user``."""
    ensure(db)
    return {
        row[0]: (row[1], dt.datetime.fromisoformat(row[2]))
        for row in db.execute(
            "SELECT path, bytes, measured_at FROM disk_usage WHERE user = ?", (user,)
        )
    }


def applied(db: sqlite3.Connection, path: str, user: str) -> int | None:
    ensure(db)
    row = db.execute(
        "SELECT limit_bytes FROM disk_quota_applied WHERE path = ? AND user = ?", (path, user)
    ).fetchone()
    return row[0] if row else None


def record_applied(db: sqlite3.Connection, path: str, user: str, limit_bytes: int) -> None:
    ensure(db)
    db.execute(
        "INSERT OR REPLACE INTO disk_quota_applied (path, user, limit_bytes) VALUES (?, ?, ?)",
        (path, user, limit_bytes),
    )
