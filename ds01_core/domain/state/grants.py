"""The grants table: time-limited permissions a user holds, each until it expires or is revoked.

Kinds: ``keepalive`` (one container is not stopped for idleness), ``exempt_idle`` and
``exempt_runtime`` (an admin's exemption of a user's containers, or of one container, from
the idle timeout or the maximum runtime), and ``bare_metal`` (direct GPU access outside
containers, :mod:`ds01_core.services.bare_metal_grants`). A grant's ``target`` names what it
covers: ``container:<id>`` or ``user:<name>``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from ds01_core.domain.model import utc_text

#: The kinds the lifecycle reads: they keep a container from being stopped.
LIFECYCLE_KINDS = ("keepalive", "exempt_idle", "exempt_runtime")


def add_grant(
    db: sqlite3.Connection,
    kind: str,
    user: str,
    target: str,
    expires: dt.datetime,
    reason: str,
    granted_by: str,
    now: dt.datetime,
) -> int:
    """Record a grant inside the caller's transaction; returns its id."""
    cursor = db.execute(
        "INSERT INTO grants (user, kind, target, expires, reason, granted_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user, kind, target, utc_text(expires), reason, granted_by, utc_text(now)),
    )
    return int(cursor.lastrowid or 0)


def active_grants(db: sqlite3.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Keep-alives and exemptions in force at ``now`` (not revoked, not expired), oldest first."""
    marks = ", ".join("?" * len(LIFECYCLE_KINDS))
    rows = db.execute(
        f"SELECT * FROM grants WHERE revoked_at IS NULL AND kind IN ({marks}) ORDER BY id",
        LIFECYCLE_KINDS,
    ).fetchall()
    return [dict(r) for r in rows if dt.datetime.fromisoformat(r["expires"]) > now]


def open_grants(db: sqlite3.Connection, kind: str, user: str | None = None) -> list[sqlite3.Row]:
    """Grants of ``kind`` (of ``user``, if given) not revoked yet, expired or not, oldest first."""
    query = "SELECT * FROM grants WHERE kind = ? AND revoked_at IS NULL"
    args: list[Any] = [kind]
    if user is not None:
        query += " AND user = ?"
        args.append(user)
    return db.execute(query + " ORDER BY id", args).fetchall()


def revoke_grants(db: sqlite3.Connection, ids: Sequence[int], now: dt.datetime) -> int:
    """End the grants ``ids`` at ``now``; returns how many were still open."""
    count = 0
    for grant_id in ids:
        count += db.execute(
            "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (utc_text(now), grant_id),
        ).rowcount
    return count
