"""The ``schedule`` source: the schedule file read once per change, looked up per moment.

A file that cannot be read or is wrong is reported once per distinct problem (a warning
naming the file and the spot) and its last good version is kept; with none, the caller falls
back to the configured ``grams_per_kwh``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from typing import TYPE_CHECKING

import attrs

from ds01_accounting.carbon.config import CarbonConfig
from ds01_accounting.carbon.model import Intensity
from ds01_accounting.carbon.schedule import Schedule, ScheduleError, load_schedule

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)
_MEMO_KEY = "ds01_accounting.carbon.schedule"
_CREATE = threading.Lock()


@attrs.define
class _Loaded:
    lock: threading.Lock = attrs.Factory(threading.Lock)
    stamp: tuple[str, int, int] | None = None
    schedule: Schedule | None = None
    error: str | None = None


def current_schedule(runtime: Runtime, cfg: CarbonConfig) -> tuple[Schedule | None, str | None]:
    """The schedule (re-read when the file changes) and the current problem with it, if any."""
    with _CREATE:
        loaded = runtime.memo(_MEMO_KEY, _Loaded)
    path = cfg.schedule_file
    if path is None:
        return None, "schedule_file is not set"
    with loaded.lock:
        try:
            st = os.stat(path)
            stamp: tuple[str, int, int] | None = (path, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == loaded.stamp:
            return loaded.schedule, loaded.error
        try:
            schedule = load_schedule(path)
        except ScheduleError as exc:
            if str(exc) != loaded.error:
                log.warning("carbon schedule: %s", exc)
            loaded.error, loaded.stamp = str(exc), stamp
            if loaded.schedule is not None and loaded.schedule.path != path:
                loaded.schedule = None
            return loaded.schedule, loaded.error
        loaded.schedule, loaded.error, loaded.stamp = schedule, None, stamp
        return schedule, None


def schedule_value(
    runtime: Runtime, cfg: CarbonConfig, now: dt.datetime
) -> tuple[float | None, str | None]:
    """The schedule's value now (None when the file is unusable or has no value for now) and
    the problem to show."""
    schedule, error = current_schedule(runtime, cfg)
    if schedule is None:
        return None, error
    value = schedule.value_at(now)
    if value is None and error is None:
        error = f"{schedule.path} has no value for {now:%Y-%m-%d %H:%M} UTC and no default"
    return value, error


def schedule_forecast(
    runtime: Runtime, cfg: CarbonConfig, now: dt.datetime, hours: int
) -> list[Intensity]:
    """The schedule's value at each coming hour boundary within ``hours``."""
    schedule, _error = current_schedule(runtime, cfg)
    if schedule is None:
        return []
    start = now.replace(minute=0, second=0, microsecond=0)
    points = []
    for step in range(1, hours + 1):
        moment = start + dt.timedelta(hours=step)
        value = schedule.value_at(moment)
        if value is not None and moment <= now + dt.timedelta(hours=hours):
            points.append(Intensity(value, "schedule", moment))
    return points
