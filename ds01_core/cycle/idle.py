"""Idleness: each running container's activity signals, its idle streak, and the idle decision.

A signal is True (active), False (below its threshold) or None (unknown: not measurable for
this container, or no earlier sample yet). A container is idle in a cycle only when at least
one signal is known and none is active: "nothing known" never counts as idle. A container that
holds GPU slots whose GPU signal is unknown (NVML could not read it) is not idle either: its GPU
may be all it uses. After
``lifecycle.idle_window`` idle cycles in a row (and past ``start_grace``), the ``on_idle`` hook
decides whether to warn its owner or stop it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, cast

import attrs

from ds01_core.cycle.activity import Activity, Counters, activity, gpu_active, sample
from ds01_core.cycle.limit_actions import SOURCE, LimitVerdict, Signals
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import HEALTH_OK, GpuProvider, ProcessListing
from ds01_core.domain.model import Event, GpuProcess, GpuSlot, Workload
from ds01_core.domain.policy import Policy
from ds01_core.domain.state.idle_streaks import Streak, save_streak, streak_of
from ds01_core.domain.state.notices_sent import Subject, forget

if TYPE_CHECKING:
    import sqlite3

    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: Grants that keep a container from being stopped for idleness.
EXEMPTIONS = frozenset({"exempt_idle", "keepalive"})


@attrs.frozen
class GpuView:
    """The GPUs as one cycle sees them: slots by UUID (with utilisation where known), the
    processes on them, each container's pids, which slots' processes were read (None: all;
    see :func:`~ds01_core.cycle.activity.gpu_active`), and the events of GPU health changes."""

    slots: dict[str, GpuSlot]
    processes: Sequence[GpuProcess]
    pids: dict[str, frozenset[int]]
    read: frozenset[str] | None = None
    complete: bool = True
    events: tuple[Event, ...] = ()


def gpu_view(runtime: Runtime, workloads: Sequence[Workload]) -> GpuView:
    """Read the GPUs once per cycle. What cannot be read is unknown, never idle: a failed slot
    listing leaves every slot unknown, a failed process query the slots it covers."""
    try:
        provider = runtime.gpu
        slots = {s.uuid: s for s in provider.slots()}
    except Exception as exc:
        # an outage (NVML down, GPUs released) is reported once by the GPU access, not per cycle
        level = logging.DEBUG if isinstance(exc, GpuUnavailableError) else logging.ERROR
        log.log(level, "lifecycle: GPU signals unavailable: %s", exc)
        pids = {w.id: frozenset(w.pids) for w in workloads if w.kind == "container"}
        return GpuView({}, [], pids, read=frozenset(), complete=False)
    listing = _process_listing(provider)
    # MIG: utilisation from GPM where the GPU has it (once per cycle, so the figure covers
    # the time since the last cycle); elsewhere the slot keeps None and the container's
    # processes on it decide
    gpm = getattr(provider, "mig_utilization", None)
    if gpm is not None:
        try:
            for uuid, value in gpm().items():
                if value is not None and uuid in slots:
                    slots[uuid] = attrs.evolve(slots[uuid], utilization=value)
        except Exception as exc:
            log.error("lifecycle: GPM unavailable: %s", exc)
    pids = {w.id: frozenset(w.pids) for w in workloads if w.kind == "container"}
    return GpuView(
        slots,
        listing.processes,
        pids,
        read=listing.read,
        complete=listing.complete,
        events=health_events(runtime, provider),
    )


def _process_listing(provider: GpuProvider) -> ProcessListing:
    """The provider's processes with what it could read; a failure: nothing read."""
    try:
        listing = getattr(provider, "process_listing", None)
        if listing is not None:
            return cast(ProcessListing, listing())
        return ProcessListing(tuple(provider.processes()))
    except Exception as exc:
        log.error("lifecycle: GPU processes unavailable: %s", exc)
        return ProcessListing(read=frozenset(), complete=False)


def health_events(runtime: Runtime, provider: GpuProvider) -> tuple[Event, ...]:
    """``gpu.read_failed`` when a GPU's reads start failing, ``gpu.read_recovered`` when they
    succeed again: once per failure streak, from the provider's ``health()``."""
    health_of = getattr(provider, "health", None)
    if health_of is None:
        return ()
    try:
        health: dict[int, str] = dict(health_of())
    except Exception as exc:
        log.error("lifecycle: GPU health unavailable: %s", exc)
        return ()
    before: dict[int, str] = runtime.memo("gpu-health", dict)
    events = []
    for index, state in sorted(health.items()):
        was_ok = before.get(index, HEALTH_OK) == HEALTH_OK
        if state != HEALTH_OK and was_ok:
            log.warning("GPU %d: reads failing: %s", index, state)
            events.append(Event("gpu.read_failed", None, SOURCE, {"gpu": index, "error": state}))
        elif state == HEALTH_OK and not was_ok:
            log.info("GPU %d: reads succeed again", index)
            events.append(Event("gpu.read_recovered", None, SOURCE, {"gpu": index}))
    before.clear()
    before.update(health)
    return tuple(events)


def signals(workload: Workload, act: Activity | None, policy: Policy, gpu: GpuView) -> Signals:
    """Each signal: True = active (at or above its threshold), False = below it, None = unknown."""
    result: Signals = {"gpu": None, "cpu": None, "network": None, "processes": None}
    if act is not None:
        if act.cpu_cores is not None:
            result["cpu"] = act.cpu_cores >= policy.cpu_threshold
        if act.net_bytes_per_s is not None:
            result["network"] = act.net_bytes_per_s >= policy.network_threshold
        if act.new_processes is not None:
            result["processes"] = act.new_processes > 0
    result["gpu"] = gpu_active(
        workload.gpu_slots,
        gpu.slots,
        gpu.processes,
        gpu.pids.get(workload.id),
        policy.gpu_threshold,
        read=gpu.read,
        complete=gpu.complete,
    )
    return result


def update_streak(
    db: sqlite3.Connection,
    workload: Workload,
    sig: Signals,
    now: dt.datetime,
    sampled_seconds: float,
) -> tuple[int, dt.datetime | None]:
    """Record this cycle's verdict; (consecutive idle cycles, idle since).

    Activity ends the streak and re-arms the idle warnings; no known signal ends it too (it
    never counts as idle), and so does an unknown GPU signal of a container that holds GPU
    slots; otherwise the streak grows, idle since the first idle sample began.
    """
    before = streak_of(db, workload.id)
    active = [name for name, value in sig.items() if value]
    known = [name for name, value in sig.items() if value is not None]
    gpu_unknown = bool(workload.gpu_slots) and sig.get("gpu") is None
    if active or not known or gpu_unknown:
        after = Streak(0, None, active[0] if active else before.last_active_signal)
    else:
        since = before.since or now - dt.timedelta(seconds=sampled_seconds)
        after = Streak(before.cycles + 1, since, before.last_active_signal)
    save_streak(db, workload.id, after, now)
    if active:
        forget(db, Subject.container(workload.id), "idle")
    return after.cycles, after.since


@attrs.frozen
class IdleState:
    """What this cycle measured of one container."""

    cycles: int
    since: dt.datetime | None
    signals: Signals


def observe(
    runtime: Runtime,
    w: Workload,
    policy: Policy,
    gpu: GpuView,
    samples: MutableMapping[str, Counters],
    now: dt.datetime,
) -> IdleState:
    """Sample ``w``'s counters, judge its signals against the last sample and record the
    streak; sets ``w.idle_seconds`` and ``w.last_active_signal`` for those who show them."""
    counters = sample(w.pids[0])
    previous = samples.get(w.id)
    samples[w.id] = counters
    act = activity(previous, counters) if previous is not None else None
    sig = signals(w, act, policy, gpu)
    with runtime.state.transaction() as db:
        cycles, since = update_streak(db, w, sig, now, act.seconds if act else 0.0)
    w.idle_seconds = (now - since).total_seconds() if since else 0.0
    w.last_active_signal = next((k for k, v in sig.items() if v), None)
    return IdleState(cycles, since, sig)


def idle_verdict(
    runtime: Runtime,
    w: Workload,
    policy: Policy,
    state: IdleState,
    running_seconds: float | None,
    exemptions: set[str],
) -> LimitVerdict | None:
    """What the ``on_idle`` hook says about ``w``, once it has been idle for the idle window,
    is past its start grace and not kept alive; None when nothing is to be done."""
    lifecycle = runtime.config.lifecycle
    in_grace = running_seconds is not None and running_seconds < float(lifecycle.start_grace)
    if (
        policy.idle_timeout is None
        or state.cycles < lifecycle.idle_window
        or in_grace
        or exemptions & EXEMPTIONS
    ):
        return None
    idle = w.idle_seconds or 0.0
    decision = runtime.hooks.on_idle(runtime, w, idle, policy)
    if decision == "stop":
        return LimitVerdict("stop", "idle", idle, policy.idle_timeout)
    if decision == "warn":
        return LimitVerdict("warn", "idle", idle, policy.idle_timeout)
    return None
