"""Admin overrides kept in the state store (``ds01 admin override``).

An override raises (or lowers) one limit for one user until it expires, with a reason and the
approver on record. Expired overrides stop applying by themselves: every reader filters on
``expires > now``; nothing has to run for them to end.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from typing import Any

import attrs
import yaml

from ds01_core.domain.config import LIMIT_KEYS, LimitSet, converter, structure_section
from ds01_core.domain.config.checks import limit_problem
from ds01_core.domain.limits import OverrideRecord
from ds01_core.domain.model import utc_text
from ds01_core.domain.users import normalize_username


class OverrideError(ValueError):
    """A bad override request; the message says what to change."""


@attrs.frozen
class StoredOverride:
    id: int
    user: str
    key: str
    value: Any
    expires: dt.datetime
    reason: str
    approved_by: str
    created_at: dt.datetime
    removed_at: dt.datetime | None

    def active(self, now: dt.datetime) -> bool:
        return self.removed_at is None and self.expires > now


def parse_assignment(text: str) -> tuple[str, Any]:
    """``max_gpu_equivalents=2`` → (key, typed value), checked like the configuration file."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not raw.strip():
        raise OverrideError(f"expected KEY=VALUE, got {text!r}")
    if key not in LIMIT_KEYS:
        raise OverrideError(f"unknown limit {key!r}; limits: {', '.join(LIMIT_KEYS)}")
    value = yaml.safe_load(raw.strip())
    parsed, problems = structure_section({key: value}, LimitSet, "")
    if problems:
        raise OverrideError("; ".join(str(p) for p in problems))
    typed = getattr(parsed, key)
    problem = limit_problem(key, typed)
    if problem is not None:
        raise OverrideError(f"{key}: {problem}")
    return key, typed


def _row(row: sqlite3.Row) -> StoredOverride:
    value = yaml.safe_load(row["value"])
    parsed, _ = structure_section({row["key"]: value}, LimitSet, "")
    return StoredOverride(
        id=row["id"],
        user=row["user"],
        key=row["key"],
        value=getattr(parsed, row["key"]) if parsed is not None else value,
        expires=dt.datetime.fromisoformat(row["expires"]),
        reason=row["reason"],
        approved_by=row["approved_by"],
        created_at=dt.datetime.fromisoformat(row["created_at"]),
        removed_at=dt.datetime.fromisoformat(row["removed_at"]) if row["removed_at"] else None,
    )


def list_overrides(db: sqlite3.Connection, *, user: str | None = None) -> list[StoredOverride]:
    query = "SELECT * FROM overrides"
    args: tuple[Any, ...] = ()
    if user:
        query += " WHERE user = ?"
        args = (normalize_username(user),)
    return [_row(r) for r in db.execute(query + " ORDER BY id", args)]


def active_overrides(db: sqlite3.Connection, now: dt.datetime) -> list[OverrideRecord]:
    """The state store's overrides in force at ``now``, for :func:`~ds01_core.domain.limits.resolve_limits`."""
    records = []
    for stored in list_overrides(db):
        if stored.active(now):
            records.append(
                OverrideRecord(
                    stored.user,
                    LimitSet(**{stored.key: stored.value}),
                    stored.expires,
                    stored.reason,
                    stored.approved_by,
                    origin=f"state #{stored.id}",
                )
            )
    return records


def check_expiry(expires: dt.datetime, now: dt.datetime) -> None:
    """Refuse an end date that has passed (for overrides and exemptions alike): a grant that
    is over when it is made does nothing, so it is a mistake."""
    if expires <= now:
        raise OverrideError(f"--expires {utc_text(expires)} is in the past")


def add_overrides(
    db: sqlite3.Connection,
    user: str,
    values: Mapping[str, Any],
    *,
    expires: dt.datetime,
    reason: str,
    approved_by: str,
    now: dt.datetime,
) -> list[int]:
    """Record one override row per key; the caller holds the transaction."""
    check_expiry(expires, now)
    if not reason.strip():
        raise OverrideError("--reason must say why (it is kept in the audit log)")
    if not values:
        raise OverrideError("give at least one KEY=VALUE")
    ids = []
    for key, value in values.items():
        text = yaml.safe_dump(converter.unstructure(value), default_flow_style=True).strip()
        text = text.removesuffix("...").strip()
        cursor = db.execute(
            "INSERT INTO overrides (user, key, value, expires, reason, approved_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                normalize_username(user),
                key,
                text,
                utc_text(expires),
                reason,
                approved_by,
                utc_text(now),
            ),
        )
        ids.append(int(cursor.lastrowid or 0))
    return ids


def remove_overrides(
    db: sqlite3.Connection,
    *,
    ids: list[int] | None = None,
    user: str | None = None,
    key: str | None = None,
    now: dt.datetime,
) -> list[StoredOverride]:
    """Mark overrides removed (kept for the record); by id, or all of a user's (for a key)."""
    targets = [
        o
        for o in list_overrides(db, user=user)
        if o.removed_at is None and (ids is None or o.id in ids) and (key is None or o.key == key)
    ]
    for override in targets:
        db.execute("UPDATE overrides SET removed_at = ? WHERE id = ?", (utc_text(now), override.id))
    return targets
