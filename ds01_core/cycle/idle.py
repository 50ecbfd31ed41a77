"""Idleness: each running container's activity signals, its idle streak, and the idle decision.

A signal is True (active), False (below its threshold) or None (unknown: not measurable for
this container, or no earlier sample yet). A container is idle in a cycle only when at least
one signal is known and none is active: "nothing known" never counts as idle. After
``lifecycle.idle_window`` idle cycles in a row (and past ``start_grace``), the ``on_idle`` hook
decides whether to warn its owner or stop it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING

import attrs

from ds01_core.cycle.activity import Activity, Counters, activity, gpu_active, sample
from ds01_core.cycle.limit_actions import LimitVerdict, Signals
from ds01_core.domain.model import GpuProcess, GpuSlot, Workload
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
    processes on them, and each container's pids."""

    slots: dict[str, GpuSlot]
    processes: Sequence[GpuProcess]
    pids: dict[str, frozenset[int]]


def gpu_view(runtime: Runtime, workloads: Sequence[Workload]) -> GpuView:
    """Read the GPUs once per cycle; unreadable GPUs leave every GPU signal unknown."""
    try:
        slots = {s.uuid: s for s in runtime.gpu.slots()}
        processes: Sequence[GpuProcess] = runtime.gpu.processes()
    except Exception as exc:
        log.error("lifecycle: GPU signals unavailable: %s", exc)
        slots, processes = {}, []
    # MIG: utilisation from GPM where the GPU has it (once per cycle, so the figure covers
    # the time since the last cycle); elsewhere the slot keeps None and the container's
    # processes on it decide
    gpm = getattr(runtime.gpu, "mig_utilization", None)
    if gpm is not None:
        try:
            for uuid, value in gpm().items():
                if value is not None and uuid in slots:
                    slots[uuid] = attrs.evolve(slots[uuid], utilization=value)
        except Exception as exc:
            log.error("lifecycle: GPM unavailable: %s", exc)
    pids = {w.id: frozenset(w.pids) for w in workloads if w.kind == "container"}
    return GpuView(slots, processes, pids)


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
    never counts as idle); otherwise the streak grows, idle since the first idle sample began.
    """
    before = streak_of(db, workload.id)
    active = [name for name, value in sig.items() if value]
    known = [name for name, value in sig.items() if value is not None]
    if active or not known:
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
