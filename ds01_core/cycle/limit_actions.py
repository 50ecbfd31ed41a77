"""Acting on a container near or past a time limit: its owner warned, then it is stopped.

The owner is warned once per threshold; the stops run together at the end of the step, each
announced.

The decisions are made elsewhere (:mod:`ds01_core.cycle.idle`,
:mod:`ds01_core.cycle.runtime_limits`); here they become notices, Docker stops and events that
carry the numbers that justified them. ds01 only ever stops a container through Docker.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import attrs

from ds01_core.cycle.notices import tell_user
from ds01_core.domain.model import Event, Notice, Workload
from ds01_core.domain.policy import Policy
from ds01_core.domain.state.notices_sent import Subject, any_sent, first_notice
from ds01_core.domain.units import format_duration

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: What the lifecycle's events and notices say they come from.
SOURCE = "lifecycle"
Signals = dict[str, bool | None]


@attrs.frozen
class LimitVerdict:
    """A container's standing against one time limit: ``seconds`` of ``limit`` used, and
    whether to warn its owner or stop it."""

    action: Literal["warn", "stop"]
    kind: Literal["idle", "runtime"]
    seconds: float
    limit: float

    @property
    def doing(self) -> str:
        """What the container has been doing that long, as a notice says it."""
        return "idle" if self.kind == "idle" else "running"


def warn(
    runtime: Runtime, w: Workload, verdict: LimitVerdict, warn_at: Sequence[float], now: dt.datetime
) -> list[Event]:
    """Tell the owner once per passed ``warn_at`` fraction of the limit (the highest passed)."""
    value, limit = verdict.seconds, verdict.limit
    interval = float(runtime.config.lifecycle.interval)
    passed = [f for f in warn_at if value >= f * limit]
    if not passed:
        return []
    threshold = f"{max(passed):g}"
    with runtime.state.transaction() as db:
        new = first_notice(db, Subject.container(w.id), verdict.kind, threshold, now)
    if not new:
        return []
    left = max(0.0, limit - value)
    when = (
        f"in {format_duration(left)}"
        if left > 0
        else f"at ds01's next check, in about {format_duration(interval)}"
    )
    message = (
        f"Your container {w.name} has been {verdict.doing} for {format_duration(value)}; it "
        f"will be stopped {when} (limit {format_duration(limit)})."
        + (
            " Use it, or run `ds01 keepalive " + w.name + " --for 2h`."
            if verdict.kind == "idle"
            else ""
        )
    )
    event_type = f"lifecycle.{verdict.kind}_warning"
    tell_user(
        runtime,
        Notice(
            w.owner, f"{w.name}: {verdict.doing} warning", message, "warning", w.name, event_type
        ),
    )
    return [
        Event(
            event_type,
            w.owner,
            SOURCE,
            {
                "container": w.name,
                "container_id": w.id,
                "seconds": round(value),
                "limit": round(limit),
                "threshold": threshold,
            },
        )
    ]


def unwarned(
    runtime: Runtime, w: Workload, verdict: LimitVerdict, warn_at: Sequence[float]
) -> bool:
    """A stop that would come without any warning before it: ``w`` is already past its limit
    the first time it is judged (ds01d was down, the limit was lowered, a cycle ran late).
    Such a container is warned now and stopped at the next cycle, as the docs promise."""
    if not warn_at or verdict.action != "stop":
        return False
    with runtime.state.transaction() as db:
        return not any_sent(db, Subject.container(w.id), verdict.kind)


@attrs.frozen
class _Stop:
    workload: Workload
    policy: Policy
    verdict: LimitVerdict
    signals: Signals


class StopBatch:
    """The stops of one step, run together at its end so that one container's grace period
    never delays another's stop."""

    def __init__(self) -> None:
        self._stops: list[_Stop] = []

    def add(self, w: Workload, policy: Policy, verdict: LimitVerdict, signals: Signals) -> None:
        self._stops.append(_Stop(w, policy, verdict, signals))

    def run(self, runtime: Runtime) -> list[Event]:
        """Stop every queued container (each with its own ``stop_grace``), announce each stop
        to its owner; a stop that fails is a ``lifecycle.error`` event."""
        if not self._stops:
            return []
        docker = runtime.docker

        def stop(item: _Stop) -> Exception | None:
            try:
                docker.stop(item.workload.id, timeout=int(item.policy.stop_grace))
            except Exception as exc:
                return exc
            return None

        with ThreadPoolExecutor(max_workers=min(16, len(self._stops))) as pool:
            outcomes = list(pool.map(stop, self._stops))
        events = [
            _stopped(runtime, item) if error is None else _failed(item.workload, error)
            for item, error in zip(self._stops, outcomes, strict=True)
        ]
        self._stops.clear()
        return events


def _failed(w: Workload, error: Exception) -> Event:
    log.error("lifecycle: could not stop %s: %s", w.name, error)
    return Event("lifecycle.error", w.owner, SOURCE, {"container": w.name, "error": str(error)})


def _stopped(runtime: Runtime, item: _Stop) -> Event:
    w, verdict = item.workload, item.verdict
    event_type = f"lifecycle.{verdict.kind}_stop"
    tell_user(
        runtime,
        Notice(
            w.owner,
            f"{w.name} stopped",
            f"Your container {w.name} was stopped: {verdict.doing} for "
            f"{format_duration(verdict.seconds)} (limit {format_duration(verdict.limit)}). "
            f"Start it again with `ds01 container start {w.name}`.",
            "action",
            w.name,
            event_type,
        ),
    )
    return Event(
        event_type,
        w.owner,
        SOURCE,
        {
            "container": w.name,
            "container_id": w.id,
            "origin": w.origin,
            "seconds": round(verdict.seconds),
            "limit": round(verdict.limit),
            "signals": item.signals,
            "demand_factor": item.policy.demand_factor,
        },
    )
