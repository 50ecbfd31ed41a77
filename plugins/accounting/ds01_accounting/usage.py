"""Reading usage back: each allocation's usage in a window, sums by user, group or period.

What a window gets (docs/accounting.md):

- GPU-equivalent-seconds are exact: weight x the overlap of the allocation (``allocated_at``
  to ``released_at``, or to now while it is open) with the window.
- What is measured (busy, known, idle GPU-equivalent-seconds, energy, CO2) is stored per UTC
  hour, so a window gets it to the hour: every hour bucket that overlaps the window counts
  whole. A window on whole hours (days, months, ``--period``) is therefore exact too.

Sums by user, group or period are :mod:`ds01_accounting.sums`' (re-exported here).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection
from typing import TYPE_CHECKING

import attrs

from ds01_accounting.records import HOUR
from ds01_accounting.store import reader
from ds01_accounting.sums import BY, Sums, aggregate, filters

if TYPE_CHECKING:
    from ds01_core.api import Runtime

__all__ = ["BY", "Sums", "UsageRow", "aggregate", "lifetime_totals", "usage_rows"]


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
    where, args = filters(users, groups, "r.")
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
