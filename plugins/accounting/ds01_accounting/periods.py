"""The windows ``ds01 usage`` asks about: typed times, and named periods (week … term … all).

Periods are calendar periods in UTC that contain now, from their start until now: ``week``
since Monday 00:00, ``month`` since the 1st, ``year`` since 1 January, ``term`` since the
latest of ``plugins.accounting.term_starts`` that is not in the future (none configured: the
current half-year, since 1 January or 1 July), ``all`` since records began.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ds01_core.api import parse_time

PERIODS: tuple[str, ...] = ("week", "month", "term", "year", "all")


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """A moment from what a person types, read as ``ds01 events --since`` reads it, except that a
    time without an offset is UTC (usage windows are UTC days and months).

    :raises ValueError: with the forms that are understood.
    """
    return parse_time(text, now)


def term_start(now: dt.datetime, starts: Sequence[str]) -> dt.datetime:
    """The start of the term ``now`` is in: the latest configured start not after ``now``;
    the current half-year when none is configured (or none has begun)."""
    begun = [d for d in (parse_date(s) for s in starts) if d <= now]
    if begun:
        return max(begun)
    return now.replace(
        month=1 if now.month < 7 else 7, day=1, hour=0, minute=0, second=0, microsecond=0
    )


def parse_date(text: str) -> dt.datetime:
    """``YYYY-MM-DD`` as midnight UTC; ValueError otherwise."""
    day = dt.date.fromisoformat(text.strip())
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def period_start(period: str, now: dt.datetime, term_starts: Sequence[str] = ()) -> dt.datetime:
    """When ``period`` (one of :data:`PERIODS`) began, in UTC."""
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return midnight - dt.timedelta(days=midnight.weekday())
    if period == "month":
        return midnight.replace(day=1)
    if period == "year":
        return midnight.replace(month=1, day=1)
    if period == "term":
        return term_start(now.astimezone(dt.UTC), term_starts)
    if period == "all":
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    raise ValueError(f"unknown period {period!r}; the periods are {', '.join(PERIODS)}")


def window(
    now: dt.datetime,
    *,
    since: str | None = None,
    until: str | None = None,
    period: str | None = None,
    term_starts: Sequence[str] = (),
) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` from the options: ``period``, or ``since``/``until`` (default: the
    current month until now). ValueError names the option that is wrong."""
    if period is not None and (since is not None or until is not None):
        raise ValueError("--period cannot be combined with --since/--until; give one or the other")
    if period is not None:
        return period_start(period, now, term_starts), now
    try:
        start = parse_moment(since, now) if since else period_start("month", now)
    except ValueError as exc:
        raise ValueError(f"--since: {exc}") from None
    try:
        end = parse_moment(until, now) if until else now
    except ValueError as exc:
        raise ValueError(f"--until: {exc}") from None
    if end <= start:
        raise ValueError(
            f"--until ({end:%Y-%m-%dT%H:%M:%SZ}) must be after --since ({start:%Y-%m-%dT%H:%M:%SZ})"
        )
    return start, end
