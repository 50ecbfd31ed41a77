"""Which window a report covers: a calendar month, the last complete term or year, or any span.

A report describes a period that is over (the timer runs on the 1st and reports the month
before), so ``month``, ``term`` and ``year`` name the last *complete* one; ``--since``/``--until``
give any other window. Boundaries are midnights in the report's time zone
(``plugins.accounting.report.timezone``, UTC by default).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence

import attrs

from ds01_core.api import Invalid

PERIODS = ("month", "term", "year")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@attrs.frozen
class Period:
    """A half-open window ``[since, until)`` and how a reader names it (``2026-11``)."""

    kind: str  # month, term, year or custom
    label: str
    since: dt.datetime
    until: dt.datetime


def zone(name: str) -> dt.tzinfo:
    """The time zone ``name`` (``UTC``, ``Europe/London``); a bad name is a usage error."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"plugins.accounting.report.timezone: unknown time zone {name!r} "
            "(expected UTC or a name like Europe/London)"
        ) from None


def _midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month(text: str, tz: dt.tzinfo) -> Period:
    """``YYYY-MM`` as its calendar month."""
    found = _MONTH.match(text.strip())
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise Invalid(f"--month: expected a month like 2026-11, got {text!r}")
    first = dt.date(int(found.group(1)), int(found.group(2)), 1)
    return Period(
        "month", f"{first:%Y-%m}", _midnight(first, tz), _midnight(_next_month(first), tz)
    )


def previous_month(now: dt.datetime, tz: dt.tzinfo) -> Period:
    """The calendar month before the one ``now`` falls in."""
    today = now.astimezone(tz).date()
    last = dt.date(today.year, today.month, 1) - dt.timedelta(days=1)
    return month(f"{last:%Y-%m}", tz)


def previous_year(now: dt.datetime, tz: dt.tzinfo) -> Period:
    year = now.astimezone(tz).year - 1
    return Period(
        "year",
        str(year),
        _midnight(dt.date(year, 1, 1), tz),
        _midnight(dt.date(year + 1, 1, 1), tz),
    )


def term_dates(term_starts: Sequence[str], today: dt.date) -> list[dt.date]:
    """The configured term starts as dates, sorted; none configured: every 1 January and
    1 July around ``today`` (half-years)."""
    if not term_starts:
        return [dt.date(y, m, 1) for y in range(today.year - 2, today.year + 2) for m in (1, 7)]
    dates = []
    for index, text in enumerate(term_starts):
        try:
            dates.append(dt.date.fromisoformat(text))
        except ValueError:
            raise Invalid(
                f"plugins.accounting.term_starts[{index}]: expected a date like 2026-09-28, "
                f"got {text!r}"
            ) from None
    return sorted(dates)


def previous_term(now: dt.datetime, tz: dt.tzinfo, term_starts: Sequence[str]) -> Period:
    """The last term that is over: from the start before the latest start to that start."""
    today = now.astimezone(tz).date()
    started = [d for d in term_dates(term_starts, today) if d <= today]
    if len(started) < 2:
        raise Invalid(
            "--period term: no complete term yet; plugins.accounting.term_starts needs two "
            "start dates on or before today (or use --since/--until)"
        )
    first, end = started[-2], started[-1]
    label = f"term {first:%Y-%m-%d} to {end - dt.timedelta(days=1):%Y-%m-%d}"
    return Period("term", label, _midnight(first, tz), _midnight(end, tz))


def moment(text: str, option: str, tz: dt.tzinfo) -> dt.datetime:
    """A date (midnight in ``tz``) or an ISO time (UTC when it names no offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return _midnight(dt.date.fromisoformat(value), tz)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"{option}: expected a date like 2026-11-01 or a time like 2026-11-01T08:00Z, "
            f"got {text!r}"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def choose(
    now: dt.datetime,
    tz: dt.tzinfo,
    *,
    month_text: str | None = None,
    period: str | None = None,
    since: str | None = None,
    until: str | None = None,
    term_starts: Sequence[str] = (),
) -> Period:
    """The window the options name; conflicting or malformed options are usage errors."""
    if month_text and (period or since or until):
        raise Invalid("--month cannot be combined with --period, --since or --until")
    if period and (since or until):
        raise Invalid("--period cannot be combined with --since or --until")
    if month_text:
        return month(month_text, tz)
    if since or until:
        if not since:
            raise Invalid("--until needs --since: a report covers a window with a start")
        start = moment(since, "--since", tz)
        end = moment(until, "--until", tz) if until else now.astimezone(dt.UTC)
        if end <= start:
            raise Invalid(f"--until must be after --since ({until or 'now'} is not)")
        shown_end = (end - dt.timedelta(seconds=1)).astimezone(tz)
        label = f"{start.astimezone(tz):%Y-%m-%d} to {shown_end:%Y-%m-%d}"
        return Period("custom", label, start, end)
    if period in (None, "month"):
        return previous_month(now, tz)
    if period == "year":
        return previous_year(now, tz)
    if period == "term":
        return previous_term(now, tz, term_starts)
    raise Invalid(f"--period: expected one of {', '.join(PERIODS)}, got {period!r}")
