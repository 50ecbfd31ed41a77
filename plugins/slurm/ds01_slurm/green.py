"""Carbon-aware start (``ds01 job submit --green``): when, before a deadline, a job's run is
forecast to be cleanest.

Pure planning, no I/O: the intensity now and the forecast come in (green_cli.py asks
ds01-accounting for them), a :class:`GreenPlan` comes out. The forecast is a step function —
each point holds until the next, the last one beyond the forecast's end, and ``intensity_now``
from now until the first point — and a start is either now or a forecast point. A job is only
delayed for a saving of at least :data:`MIN_SAVING` (1 %): waiting has a cost of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from ds01_core.api import Duration

#: the least saving (a share of the emissions of starting now) worth delaying a job for
MIN_SAVING = 0.01
#: the unit every intensity here is in
UNIT = "g CO₂-eq/kWh"


class GreenError(Exception):
    """``--green`` cannot plan this job; the message says why and what to do."""


class NoForecast(GreenError):
    """The carbon source has no forecast: starting now is as good as any other time (a caller
    may choose to go on without ``--green``)."""


@attrs.frozen
class GreenPlan:
    """When to start a job, and its estimated emissions starting now and then.

    ``intensity_now``/``intensity_then`` are the forecast's mean over the job's whole run (what
    the grams are computed from), not the instantaneous value; ``begin == now`` means start
    now, and then the "then" figures equal the "now" ones.
    """

    now: dt.datetime
    begin: dt.datetime
    duration_s: float
    power_watts: float
    intensity_now: float
    intensity_then: float
    grams_now: float
    grams_then: float
    reason: str
    #: something the user should know about the figures (a failing source), or None
    warning: str | None = None

    @property
    def starts_now(self) -> bool:
        return self.begin <= self.now

    @property
    def saved_grams(self) -> float:
        return self.grams_now - self.grams_then

    @property
    def saved_share(self) -> float:
        """The saving as a share (0..1) of the emissions of starting now."""
        return self.saved_grams / self.grams_now if self.grams_now > 0 else 0.0


def grams(power_watts: float, duration_s: float, grams_per_kwh: float) -> float:
    """CO₂ of drawing ``power_watts`` for ``duration_s`` at ``grams_per_kwh``."""
    return power_watts / 1000.0 * duration_s / 3600.0 * grams_per_kwh


def local_text(moment: dt.datetime) -> str:
    """A moment as the CLI shows it: this machine's local time, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def check_window(now: dt.datetime, duration_s: float, deadline: dt.datetime) -> None:
    """Refuse a job that cannot finish by its deadline even when started at once."""
    if duration_s <= 0:
        raise GreenError(
            "--green needs the job's length (--time) to be more than 0, to know how long it runs"
        )
    if deadline < now + dt.timedelta(seconds=duration_s):
        raise GreenError(
            f"the job cannot finish by {local_text(deadline)}: it needs {Duration(duration_s)}; "
            "give a later --deadline or a shorter --time"
        )


def _steps(
    intensity_now: float, forecast: Sequence[tuple[dt.datetime, float]], now: dt.datetime
) -> list[tuple[dt.datetime, float]]:
    """The step function: (from, value) in time order, from ``now`` on."""
    ahead = sorted((at, float(v)) for at, v in forecast if at > now)
    return [(now, float(intensity_now)), *ahead]


def mean_intensity(
    steps: Sequence[tuple[dt.datetime, float]], start: dt.datetime, end: dt.datetime
) -> float:
    """The mean of the step function over ``[start, end)`` (``start`` at or after the first
    step; the last step holds for ever)."""
    total = 0.0
    for i, (begin, value) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else end
        overlap = (min(until, end) - max(begin, start)).total_seconds()
        if overlap > 0:
            total += value * overlap
    return total / (end - start).total_seconds()


def plan_start(
    intensity_now: float | None,
    forecast: Sequence[tuple[dt.datetime, float]],
    now: dt.datetime,
    duration_s: float,
    deadline: dt.datetime,
    power_watts: float,
) -> GreenPlan:
    """The start in ``[now, deadline - duration]`` (now, or a forecast point) that gives the
    job's run the lowest mean intensity; now on a tie or a saving under 1 %."""
    check_window(now, duration_s, deadline)
    if intensity_now is None:
        raise GreenError(
            "the grid's carbon intensity now is not known, so --green cannot compare a later "
            "start with now; submit without --green, or ask your admin (ds01 carbon status "
            "shows the source's error)"
        )
    if not forecast:
        raise NoForecast(
            "the carbon source has no forecast, so starting now is as good as any time; "
            "a forecast source (plugins.accounting.carbon.source: schedule, electricitymaps, "
            "watttime or uk) lets --green choose"
        )
    steps = _steps(intensity_now, forecast, now)
    length = dt.timedelta(seconds=duration_s)
    latest = deadline - length
    mean_now = mean_intensity(steps, now, now + length)
    best, best_mean = now, mean_now
    candidates = [at for at, _v in steps[1:] if at <= latest]
    for at in candidates:
        mean = mean_intensity(steps, at, at + length)
        if mean < best_mean:
            best, best_mean = at, mean
    if best != now and mean_now - best_mean < MIN_SAVING * mean_now:
        best, best_mean = now, mean_now
    if best != now:
        reason = (
            f"the grid is forecast at {best_mean:.0f} {UNIT} on average over the run from "
            f"{local_text(best)}, against {mean_now:.0f} starting now"
        )
    elif not candidates:
        reason = (
            f"the job must start now to finish by {local_text(deadline)} "
            f"({mean_now:.0f} {UNIT} on average over the run)"
        )
    else:
        reason = (
            f"no start before {local_text(latest)} is forecast to be at least "
            f"{MIN_SAVING:.0%} cleaner than now ({mean_now:.0f} {UNIT} on average over the run)"
        )
    return GreenPlan(
        now=now,
        begin=best,
        duration_s=duration_s,
        power_watts=power_watts,
        intensity_now=mean_now,
        intensity_then=best_mean,
        grams_now=grams(power_watts, duration_s, mean_now),
        grams_then=grams(power_watts, duration_s, best_mean),
        reason=reason,
    )
