"""Sums for ``ds01 usage``: by user, group, day, week or month, summed in SQL.

GPU-equivalent-seconds per user or group (and the total, always) come from the records,
clipped exactly to the window. The measured quantities come from two levels of roll-up: the
UTC days entirely inside the window from the ``days`` table (one row per day, user and group),
the hours at its ragged ends from the hour ``buckets``. A year of a few hundred users is then
about a hundred thousand day rows and a few thousand hour rows, not a million hour rows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import attrs

from ds01_accounting.store import reader

if TYPE_CHECKING:
    from ds01_core.api import Runtime

HOUR = 3600
DAY = 86400
#: what ``ds01 usage --by`` sums over (``container``: see :mod:`ds01_accounting.by_container`)
BY: tuple[str, ...] = ("user", "group", "container", "day", "week", "month")

#: a period's key from a moment column (Unix seconds, UTC, an INTEGER); ISO weeks start on
#: Monday, and the Unix epoch was a Thursday (3 days after a Monday)
_PERIOD_KEY = {
    "day": "strftime('%Y-%m-%d', {col}, 'unixepoch')",
    "week": "strftime('%Y-%m-%d', (({col} / 86400 + 3) / 7) * 7 * 86400 - 3 * 86400, 'unixepoch')",
    "month": "strftime('%Y-%m', {col}, 'unixepoch')",
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


def filters(
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
        now = runtime.now().timestamp()
        return _aggregate(store.db, now, since.timestamp(), until.timestamp(), by, users, groups)
    finally:
        store.close()


def _spans(start: float, end: float) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """The hour-bucket ranges and the day range that together cover every hour overlapping
    ``[start, end)``: ``([(first hour, past last hour) …], (first day, past last day))``."""
    first = int(start // HOUR) * HOUR
    past = -int(-end // HOUR) * HOUR  # the end of the last hour that starts before ``end``
    day0, day1 = -(-first // DAY) * DAY, past // DAY * DAY
    if day0 >= day1:
        return [(first, past)], None
    return [(first, day0), (day1, past)], (day0, day1)


def _aggregate(
    db: sqlite3.Connection,
    now: float,
    start: float,
    end: float,
    by: str,
    users: Collection[str] | None,
    groups: Collection[str] | None,
) -> tuple[list[Sums], Sums]:
    where, args = filters(users, groups)
    sums: dict[str, Sums] = {}
    total = Sums("total")
    column = {"user": "user", "group": "grp"}.get(by)
    # exact time and the number of allocations, from the records
    began = _PERIOD_KEY[by].format(col="CAST(started_at AS INTEGER)") if not column else "NULL"
    started_key = f"CASE WHEN started_at >= {float(start)!r} THEN {began} END"
    time_query = (
        f"SELECT {column or 'NULL'} AS key, {started_key} AS started, COUNT(*) AS n, "
        "SUM(weight * (MIN(COALESCE(ended_at, ?), ?) - MAX(started_at, ?))) AS seconds "
        "FROM records WHERE started_at < ? AND COALESCE(ended_at, ?) > ?"
        + where
        + " GROUP BY key, started"
    )
    for row in db.execute(time_query, (now, end, start, end, now, start, *args)):
        part = Sums(_label(row["key"]), row["n"], row["seconds"] or 0.0)
        total.add(part)
        if column:
            sums.setdefault(part.key, Sums(part.key)).add(part)
        elif row["started"] is not None:  # by period: the allocations that began in it
            key = row["started"]
            sums.setdefault(key, Sums(key)).add(Sums(key, row["n"]))
    hour_ranges, day_range = _spans(start, end)
    parts = [("buckets", "hour", "grp", lo, hi) for lo, hi in hour_ranges if lo < hi]
    if day_range is not None:
        parts.append(("days", "day", "NULLIF(grp, '')", *day_range))
    for table, moment, group, lo, hi in parts:
        key_sql = {"user": "user", "group": group}.get(by) or _PERIOD_KEY[by].format(col=moment)
        query = (
            f"SELECT {key_sql} AS key, SUM(gpu_eq_seconds) AS seconds, SUM(busy) AS busy, "
            "SUM(known) AS known, SUM(idle) AS idle, SUM(energy) AS energy, SUM(co2) AS co2 "
            f"FROM {table} WHERE {moment} >= ? AND {moment} < ?" + where + " GROUP BY key"
        )
        for row in db.execute(query, (lo, hi, *args)):
            part = Sums(
                _label(row["key"]),
                0,
                0.0 if column else row["seconds"] or 0.0,
                row["busy"] or 0.0,
                row["known"] or 0.0,
                row["idle"] or 0.0,
                row["energy"],
                row["co2"],
            )
            sums.setdefault(part.key, Sums(part.key)).add(part)
            total.add(attrs.evolve(part, gpu_eq_seconds=0.0))
    return sorted(sums.values(), key=lambda s: s.key), total


def _label(key: str | None) -> str:
    return "(no group)" if key is None or key == "" else str(key)
