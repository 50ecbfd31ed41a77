"""A schedule file of carbon intensities: values per hour of day and for dated periods.

For sites that know their grid's pattern (a supplier's published profile, an on-site
generation plan) but have no provider to ask. YAML::

    timezone: Europe/London      # hours and dates below are local to it (default UTC)
    default: 230                 # when nothing else matches (optional)
    hourly:                      # hour of day -> g/kWh; a key is an hour or a range "0-6"
      0-6: 150
      7-17: 260
      18-23: 210
    periods:                     # dated periods; the first that matches wins over hourly
      - {from: 2026-12-24, until: 2026-12-27, grams_per_kwh: 140}

or CSV with a header naming ``grams_per_kwh`` and ``hour`` and/or ``from``,``until`` (a row
fills one or the other; times without an offset are UTC). ``until`` is exclusive. Every
problem names the file and where in it (``hourly.7-17``, ``periods[2].until``, ``line 5``).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import zoneinfo
from typing import Any

import attrs


class ScheduleError(Exception):
    """The schedule file is missing, unreadable or wrong; the message names the file and spot."""


@attrs.frozen
class Period:
    start: dt.datetime
    until: dt.datetime
    grams_per_kwh: float


@attrs.frozen
class Schedule:
    """The parsed file: what :meth:`value_at` looks up."""

    path: str
    timezone: dt.tzinfo
    hourly: dict[int, float]
    periods: tuple[Period, ...]
    default: float | None = None

    def value_at(self, moment: dt.datetime) -> float | None:
        """The first dated period holding ``moment``, else its hour of day, else the default."""
        for period in self.periods:
            if period.start <= moment < period.until:
                return period.grams_per_kwh
        local = moment.astimezone(self.timezone)
        return self.hourly.get(local.hour, self.default)


def _number(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ScheduleError(
                f"{where}: expected a number of g CO₂-eq/kWh, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScheduleError(f"{where}: expected a number of g CO₂-eq/kWh, got {value!r}")
    if value < 0:
        raise ScheduleError(f"{where}: must be 0 or more, got {value}")
    return float(value)


def _hours(key: Any, where: str) -> range:
    text = str(key).strip()
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high) if sep else int(low)
    except ValueError:
        raise ScheduleError(
            f"{where}: expected an hour 0-23 or a range like 0-6, got {key!r}"
        ) from None
    if not (0 <= first <= last <= 23):
        raise ScheduleError(f"{where}: hours run from 0 to 23, low to high; got {key!r}")
    return range(first, last + 1)


def _moment(value: Any, tz: dt.tzinfo, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ScheduleError(
                f"{where}: expected a date like 2026-12-24 or 2026-12-24T18:00Z, got {value!r}"
            ) from None
    else:
        raise ScheduleError(f"{where}: expected a date like 2026-12-24, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt.UTC)


def _period(
    start: Any, until: Any, value: Any, tz: dt.tzinfo, where: str, sep: str = "."
) -> Period:
    begin = _moment(start, tz, f"{where}{sep}from")
    end = _moment(until, tz, f"{where}{sep}until")
    if end <= begin:
        raise ScheduleError(f"{where}{sep}until: must be after from ({start} .. {until})")
    return Period(begin, end, _number(value, f"{where}{sep}grams_per_kwh"))


def _add_hours(hourly: dict[int, float], key: Any, value: Any, where: str) -> None:
    for hour in _hours(key, where):
        if hour in hourly:
            raise ScheduleError(f"{where}: hour {hour} is given twice")
        hourly[hour] = _number(value, where)


def _from_yaml(path: str, text: str) -> Schedule:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: expected a mapping with hourly, periods, default, timezone")
    unknown = sorted(str(k) for k in data if k not in {"timezone", "default", "hourly", "periods"})
    if unknown:
        raise ScheduleError(
            f"{path}: {unknown[0]}: unknown key (expected hourly, periods, default, timezone)"
        )
    name = data.get("timezone", "UTC")
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{path}: timezone: unknown time zone {name!r}") from None
    default = data.get("default")
    hourly: dict[int, float] = {}
    raw_hourly = data.get("hourly") or {}
    if isinstance(raw_hourly, list):
        if len(raw_hourly) != 24:
            raise ScheduleError(
                f"{path}: hourly: a list needs 24 values, one per hour; got {len(raw_hourly)}"
            )
        raw_hourly = dict(enumerate(raw_hourly))
    if not isinstance(raw_hourly, dict):
        raise ScheduleError(f"{path}: hourly: expected a mapping of hours to g/kWh or a list of 24")
    for key, value in raw_hourly.items():
        _add_hours(hourly, key, value, f"{path}: hourly.{key}")
    raw_periods = data.get("periods") or []
    if not isinstance(raw_periods, list):
        raise ScheduleError(f"{path}: periods: expected a list")
    periods = []
    for index, entry in enumerate(raw_periods):
        where = f"{path}: periods[{index}]"
        if not isinstance(entry, dict):
            raise ScheduleError(f"{where}: expected a mapping with from, until, grams_per_kwh")
        extra = sorted(str(k) for k in entry if k not in {"from", "until", "grams_per_kwh"})
        if extra:
            raise ScheduleError(
                f"{where}.{extra[0]}: unknown key (expected from, until, grams_per_kwh)"
            )
        periods.append(
            _period(entry.get("from"), entry.get("until"), entry.get("grams_per_kwh"), tz, where)
        )
    return Schedule(
        path,
        tz,
        hourly,
        tuple(periods),
        None if default is None else _number(default, f"{path}: default"),
    )


def _from_csv(path: str, text: str) -> Schedule:
    reader = csv.DictReader(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    columns = set(reader.fieldnames or ())
    if "grams_per_kwh" not in columns or not ({"hour"} <= columns or {"from", "until"} <= columns):
        raise ScheduleError(
            f"{path} line 1: the header needs grams_per_kwh and hour, or from and until"
        )
    hourly: dict[int, float] = {}
    periods = []
    for row in reader:
        where = f"{path} line {reader.line_num}"
        hour = (row.get("hour") or "").strip()
        start, until = (row.get("from") or "").strip(), (row.get("until") or "").strip()
        if hour and (start or until):
            raise ScheduleError(f"{where}: a row has an hour or a from/until period, not both")
        if hour:
            _add_hours(hourly, hour, row.get("grams_per_kwh"), where)
        elif start or until:
            periods.append(_period(start, until, row.get("grams_per_kwh"), dt.UTC, where, sep=": "))
        else:
            raise ScheduleError(f"{where}: the row has neither an hour nor a from/until period")
    return Schedule(path, dt.UTC, hourly, tuple(periods))


def load_schedule(path: str) -> Schedule:
    """The schedule in ``path`` (CSV when it ends in ``.csv``, YAML otherwise)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScheduleError(f"{path}: cannot read the schedule file: {reason}") from None
    if os.path.splitext(path)[1].lower() == ".csv":
        return _from_csv(path, text)
    return _from_yaml(path, text)
