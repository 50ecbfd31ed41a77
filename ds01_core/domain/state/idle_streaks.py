"""The idle_streaks table: per container, how many cycles in a row it was idle, and since when.

The verdict itself (what counts as idle) is the cycle's: :mod:`ds01_core.cycle.idle`. The
record survives a daemon restart, so a restart never resets anyone's idle time.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import attrs

from ds01_core.domain.model import utc_text


@attrs.frozen
class Streak:
    """One container's idle record: ``cycles`` idle cycles in a row, idle since ``since``
    (None while active) and the last signal that showed activity."""

    cycles: int = 0
    since: dt.datetime | None = None
    last_active_signal: str | None = None


def streak_of(db: sqlite3.Connection, container: str) -> Streak:
    """The record of ``container``; a container never seen has a streak of nothing."""
    row = db.execute("SELECT * FROM idle_streaks WHERE container = ?", (container,)).fetchone()
    if row is None:
        return Streak()
    since = dt.datetime.fromisoformat(row["idle_since"]) if row["idle_since"] else None
    return Streak(int(row["cycles"]), since, row["last_active_signal"])


def save_streak(db: sqlite3.Connection, container: str, streak: Streak, now: dt.datetime) -> None:
    db.execute(
        "INSERT OR REPLACE INTO idle_streaks (container, idle_since, cycles, last_active_signal, "
        "updated_at) VALUES (?, ?, ?, ?, ?)",
        (
            container,
            utc_text(streak.since) if streak.since else None,
            streak.cycles,
            streak.last_active_signal,
            utc_text(now),
        ),
    )
