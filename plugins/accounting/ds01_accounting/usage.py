"""Reading usage back: each allocation's usage in a window, sums by user, group or period.

What a window gets (docs/accounting.md):

- GPU-equivalent-seconds are exact: weight x the overlap of the allocation (``allocated_at``
  to ``released_at``, or to now while it is open) with the window.
- What is measured (busy, known, idle GPU-equivalent-seconds, energy, CO2) is stored per UTC
  hour, so a window gets it to the hour: every hour bucket that overlaps the window counts
  whole. A window on whole hours (days, months, ``--period``) is therefore exact too.

Everything is summed in SQL (``aggregate``): a year of a few hundred users is one pass over
the hour buckets, not a Python loop over a million rows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ds01_accounting.records import HOUR
from ds01_accounting.store import reader

if TYPE_CHECKING:
    from ds01_core.api import Runtime

By = Literal["user", "group", "day", "week", "month"]
BY: tuple[str, ...] = ("user", "group", "day", "week", "month")


@attrs.frozen
class UsageRow:
    """One allocation's usage inside a window (clipped to it)."""

    user: str
    group: str | None
    container: str
    container_id: str
    slots: tuple[str, ...]
    gpu_equivalents: float
    started_at: dt.datetime
    ended_at: dt.datetime | None
    gpu_eq_seconds: float
    busy_gpu_eq_seconds: float | None
    known_gpu_eq_seconds: float
    idle_gpu_eq_seconds: float
    energy_joules: float | None
    co2_grams: float | None


def _moment(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _filters(
    users: Collection[str] | None, groups: Collection[str] | None, prefix: str = ""
) -> tuple[str, list[Any]]:
    """`` AND user IN (…) AND grp IN (…)`` for the given filters, and its arguments."""
    sql, args = "", []
    for column, values in (("user", users), ("grp", groups)):
        if values is not None:
            values = sorted(set(values))
            sql += f" AND {prefix}{column} IN ({','.join('?' * len(values)) or 'NULL'})"
            args += values
    return sql, args


def usage_rows(
    runtime: Runtime,
    since: dt.datetime,
    until: dt.datetime,
    *,
    users: Collection[str] | None = None,
    groups: Collection[str] | None = None,
) -> list[UsageRow]:
    """Every allocation that overlaps ``[since, until)``, its usage clipped to the window,
    oldest first; ``users``/``groups`` keep only theirs. Empty before the daemon's first cycle."""
    store = reader(runtime)
    if store is None:
        return []
    try:
        return _rows(store.db, since.timestamp(), until.timestamp(), runtime, users, groups)
    finally:
        store.close()


def _rows(
    db: sqlite3.Connection,
    start: float,
    end: float,
    runtime: Runtime,
    users: Collection[str] | None,
    groups: Collection[str] | None,
) -> list[UsageRow]:
    now = runtime.now().timestamp()
    where, args = _filters(users, groups, "r.")
    query = (
        "SELECT r.*, b.busy AS w_busy, b.known AS w_known, b.idle AS w_idle, "
        "b.energy AS w_energy, b.co2 AS w_co2 FROM records r LEFT JOIN ("
        "  SELECT record_id, SUM(busy) AS busy, SUM(known) AS known, SUM(idle) AS idle, "
        "  SUM(energy) AS energy, SUM(co2) AS co2 FROM buckets "
        "  WHERE hour > ? AND hour < ? GROUP BY record_id"
        ") b ON b.record_id = r.id "
        "WHERE r.started_at < ? AND COALESCE(r.ended_at, ?) > ?" + where + " ORDER BY r.started_at"
    )
    rows = []
    for row in db.execute(query, (start - HOUR, end, end, now, start, *args)):
        stop = row["ended_at"] if row["ended_at"] is not None else now
        overlap = max(0.0, min(stop, end) - max(row["started_at"], start))
        known = row["w_known"] or 0.0
        rows.append(
            UsageRow(
                user=row["user"],
                group=row["grp"],
                container=row["container"],
                container_id=row["container_id"],
                slots=tuple(row["slots"].split()),
                gpu_equivalents=row["weight"],
                started_at=_moment(row["started_at"]),  # type: ignore[arg-type]
                ended_at=_moment(row["ended_at"]),
                gpu_eq_seconds=row["weight"] * overlap,
                busy_gpu_eq_seconds=(row["w_busy"] or 0.0) if known > 0 else None,
                known_gpu_eq_seconds=known,
                idle_gpu_eq_seconds=row["w_idle"] or 0.0,
                energy_joules=row["w_energy"],
                co2_grams=row["w_co2"],
            )
        )
    return rows


def lifetime_totals(runtime: Runtime) -> dict[str, tuple[float, float]]:
    """``{user: (energy_joules, co2_grams)}`` since records began (for the exporter)."""
    store = reader(runtime)
    if store is None:
        return {}
    try:
        return {
            row["user"]: (row["energy"], row["co2"])
            for row in store.db.execute("SELECT user, energy, co2 FROM totals ORDER BY user")
        }
    finally:
        store.close()


# -- sums ---------------------------------------------------------------------------------------

#: SQL for a bucket's period key, from its ``hour`` (Unix seconds, UTC)
_PERIOD_KEY = {
    "day": "strftime('%Y-%m-%d', hour, 'unixepoch')",
    # ISO weeks start on Monday; the Unix epoch was a Thursday (3 days after a Monday)
    "week": "strftime('%Y-%m-%d', ((hour / 86400 + 3) / 7) * 7 * 86400 - 3 * 86400, 'unixepoch')",
    "month": "strftime('%Y-%m', hour, 'unixepoch')",
}


@attrs.define
class Sums:
    """One line of ``ds01 usage``: a user's, a group's or a period's sums."""

    key: str
    allocations: int = 0
    gpu_eq_seconds: float = 0.0
    busy: float = 0.0
    known: float = 0.0
    idle: float = 0.0
    energy: float | None = None
    co2: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "allocations": self.allocations,
            "gpu_eq_seconds": round(self.gpu_eq_seconds, 3),
            "gpu_hours": round(self.gpu_eq_seconds / 3600, 9),
            "busy_gpu_eq_seconds": round(self.busy, 3) if self.known > 0 else None,
            "known_gpu_eq_seconds": round(self.known, 3),
            "efficiency": round(self.busy / self.known, 6) if self.known > 0 else None,
            "idle_gpu_hours": round(self.idle / 3600, 9),
            "energy_kwh": round(self.energy / 3.6e6, 9) if self.energy is not None else None,
            "co2_kg": round(self.co2 / 1000, 9) if self.co2 is not None else None,
        }

    def add(self, other: Sums) -> None:
        self.allocations += other.allocations
        self.gpu_eq_seconds += other.gpu_eq_seconds
        self.busy += other.busy
        self.known += other.known
        self.idle += other.idle
        if other.energy is not None:
            self.energy = (self.energy or 0.0) + other.energy
        if other.co2 is not None:
            self.co2 = (self.co2 or 0.0) + other.co2


def aggregate(
    runtime: Runtime,
    since: dt.datetime,
    until: dt.datetime,
    by: str = "user",
    *,
    users: Collection[str] | None = None,
    groups: Collection[str] | None = None,
) -> tuple[list[Sums], Sums]:
    """Sums over ``[since, until)`` by ``by``, sorted by key, and the total (whose
    GPU-equivalent-seconds are exact whatever ``by``)."""
    store = reader(runtime)
    if store is None:
        return [], Sums("total")
    try:
        return _aggregate(
            store.db, runtime, since.timestamp(), until.timestamp(), by, users, groups
        )
    finally:
        store.close()


def _aggregate(
    db: sqlite3.Connection,
    runtime: Runtime,
    start: float,
    end: float,
    by: str,
    users: Collection[str] | None,
    groups: Collection[str] | None,
) -> tuple[list[Sums], Sums]:
    now = runtime.now().timestamp()
    where, args = _filters(users, groups)
    sums: dict[str, Sums] = {}
    total = Sums("total")
    column = {"user": "user", "group": "grp"}.get(by)
    key_sql = column or _PERIOD_KEY[by]
    # exact time from the records (per user/group; the total always)
    time_query = (
        f"SELECT {column or 'NULL'} AS key, COUNT(*) AS n, SUM(weight * "
        "(MIN(COALESCE(ended_at, ?), ?) - MAX(started_at, ?))) AS seconds "
        "FROM records WHERE started_at < ? AND COALESCE(ended_at, ?) > ?" + where + " GROUP BY key"
    )
    for row in db.execute(time_query, (now, end, start, end, now, start, *args)):
        part = Sums(_label(row["key"]), row["n"], row["seconds"] or 0.0)
        total.add(part)
        if column:
            sums.setdefault(part.key, Sums(part.key)).add(part)
    bucket_query = (
        f"SELECT {key_sql} AS key, SUM(gpu_eq_seconds) AS seconds, "
        + ("0" if column else "COUNT(DISTINCT record_id)")
        + " AS n, "
        "SUM(busy) AS busy, SUM(known) AS known, SUM(idle) AS idle, SUM(energy) AS energy, "
        "SUM(co2) AS co2 FROM buckets WHERE hour > ? AND hour < ?" + where + " GROUP BY key"
    )
    for row in db.execute(bucket_query, (start - HOUR, end, *args)):
        part = Sums(
            _label(row["key"]),
            0 if column else row["n"],
            0.0 if column else row["seconds"] or 0.0,
            row["busy"] or 0.0,
            row["known"] or 0.0,
            row["idle"] or 0.0,
            row["energy"],
            row["co2"],
        )
        sums.setdefault(part.key, Sums(part.key)).add(part)
        total.add(attrs.evolve(part, allocations=0, gpu_eq_seconds=0.0))
    return sorted(sums.values(), key=lambda s: s.key), total


def _label(key: str | None) -> str:
    return "(no group)" if key is None else str(key)
