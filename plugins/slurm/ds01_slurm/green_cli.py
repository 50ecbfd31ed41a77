"""``--green`` for ``ds01 job submit``: the deadline, the carbon figures from ds01-accounting,
and the lines and the ``sbatch --begin`` that come of a :class:`~ds01_slurm.green.GreenPlan`.

The intensity comes from the service operation ``accounting.carbon_status`` called by name
(this plugin never imports ds01-accounting): through ``ds01-api`` for a plain user, in-process
for root, so the provider's keys and cache stay the server's.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.api import Duration, NotFound, ServiceError, format_duration
from ds01_slurm.config import GreenConfig
from ds01_slurm.green import GreenError, GreenPlan, NoForecast, check_window, plan_start

if TYPE_CHECKING:
    from ds01_core.api import CliState

#: the longest forecast accounting.carbon_status gives
MAX_HOURS = 72
NEEDS_ACCOUNTING = (
    "--green needs ds01-accounting's carbon intensity (plugins.accounting.carbon), which this "
    "server does not offer; ask your admin, or submit without --green"
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DEADLINE_FORMS = "a deadline like 12h, 2d, 2026-12-01T08:00 or 08:00"


def parse_deadline(text: str, now: dt.datetime) -> dt.datetime:
    """``--deadline``: a length from ``now`` (``12h``, ``2d``, ``1h30m``), a local date and
    time (``2026-12-01T08:00``; an offset or ``Z`` is kept), or a local time of day
    (``08:00``: its next occurrence). An aware UTC moment, after ``now``."""
    value = text.strip()
    moment: dt.datetime | None = None
    clock = _CLOCK.match(value)
    if clock:
        hour, minute, second = (int(g or 0) for g in clock.groups())
        if hour > 23 or minute > 59 or second > 59:
            raise GreenError(
                f"--deadline: {text!r} is not a time of day; expected {_DEADLINE_FORMS}"
            )
        # wall-clock times, made aware by astimezone (this machine's zone, DST included)
        naive = now.astimezone().replace(tzinfo=None)
        naive = naive.replace(hour=hour, minute=minute, second=second, microsecond=0)
        moment = naive.astimezone()
        if moment <= now:
            moment = (naive + dt.timedelta(days=1)).astimezone()
    elif re.search(r"[A-Za-z]", value) and not re.match(r"^\d{4}-", value):
        try:
            moment = now + dt.timedelta(seconds=float(Duration.parse(value)))
        except ValueError:
            moment = None
    else:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            # naive: this machine's local time (astimezone reads it so, DST included)
            moment = parsed.astimezone()
    if moment is None:
        raise GreenError(f"--deadline: cannot read {text!r}; expected {_DEADLINE_FORMS}")
    moment = moment.astimezone(dt.UTC)
    if moment <= now:
        raise GreenError(
            f"--deadline: {moment.astimezone():%Y-%m-%d %H:%M} has passed; give a later one"
        )
    return moment


def power_watts(config: GreenConfig, gpus: float) -> float:
    """The power a job is assumed to draw: ``watts_per_gpu`` per GPU (a MIG instance its share),
    or ``watts_cpu_only`` without a GPU."""
    return config.watts_per_gpu * gpus if gpus > 0 else config.watts_cpu_only


def _moment(text: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _figures(
    answer: Any,
) -> tuple[str, float | None, list[tuple[dt.datetime, float]], str | None, bool]:
    """(source, intensity now, forecast, error, stale) from accounting.carbon_status's answer."""
    try:
        source = str(answer.get("source") or "none")
        now = answer.get("intensity")
        intensity = None if now is None else float(now["grams_per_kwh"])
        stale = bool(now and now.get("stale"))
        points = [(_moment(p["at"]), float(p["grams_per_kwh"])) for p in answer["forecast"]]
        error = answer.get("error") or answer.get("forecast_error")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise GreenError(
            f"--green: ds01's carbon status answer cannot be read ({exc!r}); are ds01 and "
            "ds01-accounting the same version? ask your admin"
        ) from None
    return source, intensity, points, None if error is None else str(error), stale


def green_plan(
    state: CliState,
    *,
    duration_s: float,
    deadline: dt.datetime,
    gpus: float,
    config: GreenConfig | None = None,
    now: dt.datetime | None = None,
) -> GreenPlan:
    """The plan for a job of ``duration_s`` on ``gpus`` GPUs that must end by ``deadline``,
    from the server's carbon intensity and forecast. GreenError when it cannot be made."""
    now = now or dt.datetime.now(dt.UTC)
    check_window(now, duration_s, deadline)
    hours = min(MAX_HOURS, max(1, math.ceil((deadline - now).total_seconds() / 3600)))
    try:
        answer = state.call("accounting.carbon_status", hours=hours)
    except NotFound:
        raise GreenError(NEEDS_ACCOUNTING) from None
    except ServiceError as exc:
        raise GreenError(f"--green cannot get the carbon intensity: {exc}") from None
    source, intensity, points, error, stale = _figures(answer)
    if source == "none":
        raise NoForecast(
            "--green: no carbon source is configured (plugins.accounting.carbon.source is "
            "none), so starting now is as good as any time; ask your admin for a forecast "
            "source (schedule, electricitymaps, watttime or uk), or submit without --green"
        )
    if intensity is not None and not points:
        what = (
            f"the carbon intensity is a fixed {intensity:.0f} g CO₂-eq/kWh"
            if source == "fixed"
            else f"the carbon source {source} gave no forecast" + (f" ({error})" if error else "")
        )
        raise NoForecast(
            f"--green: {what}, so starting now is as good as any time; ask your admin for a "
            "forecast source (schedule, electricitymaps, watttime or uk), or submit without "
            "--green"
        )
    if intensity is None:
        raise GreenError(
            f"--green: the carbon intensity now is not known (source {source}"
            + (f": {error}" if error else "")
            + "); submit without --green, or ask your admin"
        )
    plan = plan_start(
        intensity, points, now, duration_s, deadline, power_watts(config or GreenConfig(), gpus)
    )
    if stale:
        warning = (
            f"the carbon source {source} is failing"
            + (f" ({error})" if error else "")
            + "; these are its last known figures"
        )
        plan = attrs.evolve(plan, warning=warning)
    return plan


def mass_text(grams: float) -> str:
    """``~850 g``, ``~1.2 kg``, ``~15 kg``."""
    if grams < 1000:
        return f"~{grams:.0f} g"
    kg = grams / 1000
    return f"~{kg:.1f} kg" if kg < 10 else f"~{kg:.0f} kg"


def when_text(moment: dt.datetime, now: dt.datetime) -> str:
    """A start time in local time: ``03:00`` today, ``Tue 03:00`` this week, else the date."""
    local, local_now = moment.astimezone(), now.astimezone()
    if local.date() == local_now.date():
        return f"{local:%H:%M}"
    if (local.date() - local_now.date()).days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def describe(plan: GreenPlan) -> list[str]:
    """What ``ds01 job submit --green`` prints about the plan."""
    if plan.starts_now:
        first = f"Starting now is greenest: {mass_text(plan.grams_now)} CO₂ over the run."
    else:
        wait = (plan.begin - plan.now).total_seconds()
        first = (
            f"Start at {when_text(plan.begin, plan.now)} (in {format_duration(wait)}): "
            f"{mass_text(plan.grams_then)} CO₂ instead of {mass_text(plan.grams_now)} now "
            f"(-{round(plan.saved_share * 100)} %)."
        )
    lines = [
        first,
        f"  Why: {plan.reason}.",
        f"  Estimate: {plan.power_watts:.0f} W assumed for {Duration(plan.duration_s)} "
        "(plugins.slurm.green), not measured.",
    ]
    if plan.warning:
        lines.append(f"  Note: {plan.warning}.")
    return lines


def sbatch_begin(plan: GreenPlan) -> str | None:
    """``--begin=YYYY-MM-DDTHH:MM:SS`` in local time (how sbatch reads it), None to start now."""
    if plan.starts_now:
        return None
    begin = plan.begin.astimezone()
    if begin.microsecond:
        begin = begin.replace(microsecond=0) + dt.timedelta(seconds=1)
    return f"--begin={begin:%Y-%m-%dT%H:%M:%S}"
