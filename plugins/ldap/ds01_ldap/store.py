"""The membership cache in ds01's state store: the plugin's own tables in the same SQLite file.

``user_group`` answers from here only, so limits resolve without a network call and the last
known membership stays in force while the directory is down. The tables are created with
``CREATE TABLE IF NOT EXISTS`` inside a state-store transaction (idempotent, safe when the
daemon and an admin's CLI start together) and never by a read: a reader that finds no table
simply has no LDAP answer yet.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ds01_ldap.resolve import Membership

if TYPE_CHECKING:
    from ds01_core.api import Runtime

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ldap_membership (
        user TEXT PRIMARY KEY,
        ds01_group TEXT NOT NULL,
        ldap_groups TEXT NOT NULL,
        synced_at TEXT NOT NULL
    )""",
    # key/value: last_success, last_attempt, last_error, server, fingerprint
    """CREATE TABLE IF NOT EXISTS ldap_sync_state (
        key TEXT PRIMARY KEY,
        value TEXT
    )""",
    # at most one held sync (the latest); a later sync that needs no holding clears it
    """CREATE TABLE IF NOT EXISTS ldap_pending (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        created_at TEXT NOT NULL,
        server TEXT NOT NULL,
        groups TEXT NOT NULL,
        changes TEXT NOT NULL
    )""",
)

_MEMO_KEY = "ds01_ldap.schema"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def ensure_schema(runtime: Runtime) -> None:
    """Create the plugin's tables once per runtime (idempotent across processes)."""

    def create() -> bool:
        with runtime.state.transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)
        return True

    runtime.memo(_MEMO_KEY, create)


@attrs.frozen
class CachedMembership:
    """One cached row: the user's ds01 group, the mapped LDAP groups behind it, and when."""

    user: str
    group: str
    ldap_groups: dict[str, str]
    synced_at: dt.datetime | None

    @property
    def membership(self) -> Membership:
        return Membership(self.group, self.ldap_groups)


def _row(row: sqlite3.Row) -> CachedMembership:
    return CachedMembership(
        user=row["user"],
        group=row["ds01_group"],
        ldap_groups=json.loads(row["ldap_groups"]),
        synced_at=parse_iso(row["synced_at"]),
    )


def read_memberships(db: sqlite3.Connection) -> dict[str, CachedMembership]:
    rows = db.execute("SELECT * FROM ldap_membership ORDER BY user").fetchall()
    return {row["user"]: _row(row) for row in rows}


def read_membership(db: sqlite3.Connection, user: str) -> CachedMembership | None:
    """``user``'s cached row; raises ``sqlite3.OperationalError`` before the first sync."""
    row = db.execute("SELECT * FROM ldap_membership WHERE user = ?", (user,)).fetchone()
    return _row(row) if row else None


def write_membership(
    db: sqlite3.Connection, user: str, membership: Membership | None, now: dt.datetime
) -> None:
    """Record ``user``'s membership, or forget the user (``None``: in no mapped group)."""
    if membership is None:
        db.execute("DELETE FROM ldap_membership WHERE user = ?", (user,))
        return
    db.execute(
        "INSERT INTO ldap_membership (user, ds01_group, ldap_groups, synced_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user) DO UPDATE SET "
        "ds01_group = excluded.ds01_group, ldap_groups = excluded.ldap_groups, "
        "synced_at = excluded.synced_at",
        (user, membership.group, json.dumps(membership.ldap_groups, sort_keys=True), iso(now)),
    )


# -- sync bookkeeping -------------------------------------------------------------------------


@attrs.frozen
class SyncState:
    """When the directory was last read successfully, last tried, and what went wrong."""

    last_success: dt.datetime | None = None
    last_attempt: dt.datetime | None = None
    last_error: str | None = None
    server: str | None = None
    fingerprint: str | None = None


def read_sync_state(db: sqlite3.Connection) -> SyncState:
    values = dict(db.execute("SELECT key, value FROM ldap_sync_state").fetchall())
    return SyncState(
        last_success=parse_iso(values.get("last_success")),
        last_attempt=parse_iso(values.get("last_attempt")),
        last_error=values.get("last_error"),
        server=values.get("server"),
        fingerprint=values.get("fingerprint"),
    )


def write_sync_state(db: sqlite3.Connection, **values: str | dt.datetime | None) -> None:
    """Set some of :class:`SyncState`'s fields (datetimes are stored as ISO UTC)."""
    known = {f.name for f in attrs.fields(SyncState)}
    for key, value in values.items():
        if key not in known:
            raise KeyError(key)
        text = iso(value) if isinstance(value, dt.datetime) else value
        db.execute(
            "INSERT INTO ldap_sync_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, text),
        )


# -- held syncs -------------------------------------------------------------------------------


@attrs.frozen
class Pending:
    """A sync held because it would remove too many members of some group."""

    created_at: dt.datetime
    server: str
    groups: dict[str, Any]
    changes: list[dict[str, Any]]


def read_pending(db: sqlite3.Connection) -> Pending | None:
    row = db.execute("SELECT * FROM ldap_pending WHERE id = 1").fetchone()
    if row is None:
        return None
    return Pending(
        created_at=parse_iso(row["created_at"]) or dt.datetime.min.replace(tzinfo=dt.UTC),
        server=row["server"],
        groups=json.loads(row["groups"]),
        changes=json.loads(row["changes"]),
    )


def write_pending(
    db: sqlite3.Connection,
    *,
    now: dt.datetime,
    server: str,
    groups: Mapping[str, Any],
    changes: list[dict[str, Any]],
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO ldap_pending (id, created_at, server, groups, changes) "
        "VALUES (1, ?, ?, ?, ?)",
        (iso(now), server, json.dumps(groups, sort_keys=True), json.dumps(changes)),
    )


def clear_pending(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM ldap_pending")
