"""One lifecycle cycle: detect → reconcile → enforce → idle (with notices to users).

The cycle is the only place the daemon's periodic work is sequenced. Each step calls one hook;
a plugin that raises in a step costs only its own answer (the hooks are called one plugin at a
time, see :mod:`ds01_core.framework.hooks`): its failure is logged, written to the audit log as
``plugin.failed`` and listed in the cycle's errors, and every other plugin's results are kept,
because one broken plugin must not stop GPUs from being released or limits from being applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from ds01_core.cycle.detection.inventory import diff_events
from ds01_core.cycle.upkeep import UpkeepStep
from ds01_core.domain.model import Action, Event, Workload
from ds01_core.domain.user_limits import effective_limits
from ds01_core.framework.hooks import HookFailure

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)


@attrs.define
class CycleReport:
    """What one cycle saw and did, for the daemon's log and for tests."""

    workloads: list[Workload] = attrs.Factory(list)
    events: list[Event] = attrs.Factory(list)
    actions: list[Action] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    seconds: float = 0.0


def merge_workloads(batches: Iterable[Sequence[Workload] | None]) -> list[Workload]:
    """Merge detectors' reports by ``(kind, id)``: the first record wins, later ones add slots
    and pids (two detectors seeing one container from different angles)."""
    merged: dict[tuple[str, str], Workload] = {}
    for batch in batches:
        for workload in batch or ():
            key = (workload.kind, workload.id)
            first = merged.get(key)
            if first is None:
                merged[key] = workload
                continue
            if "partial" in first.flags and "partial" not in workload.flags:
                # a full record (the container detector's) beats a partial one (a GPU process
                # seen inside the container), whichever came first
                merged[key], first, workload = workload, workload, first
            first.gpu_slots.extend(s for s in workload.gpu_slots if s not in first.gpu_slots)
            first.pids.extend(p for p in workload.pids if p not in first.pids)
            first.unrestricted_gpu = first.unrestricted_gpu or workload.unrestricted_gpu
    return list(merged.values())


def detect(
    runtime: Runtime, errors: list[str] | None = None, failed: list[HookFailure] | None = None
) -> list[Workload]:
    """The merged inventory; detectors that raised are skipped (and named in ``errors``, and
    handed over in ``failed`` for the audit log)."""
    batches = runtime.hooks.detect_workloads(runtime)
    if errors is not None:
        errors.extend(f"detect ({f.plugin}): {f.error}" for f in batches.failures)
    if failed is not None:
        failed.extend(batches.failures)
    return merge_workloads(batches)


def users_to_enforce(runtime: Runtime, workloads: Sequence[Workload]) -> list[str]:
    """Everyone who owns a workload or has limits of their own in the configuration."""
    limits = runtime.config.limits
    users = {w.owner for w in workloads if w.owner and w.owner != "unknown"}
    users.update(limits.users)
    for group in limits.groups.values():
        users.update(group.members)
    return sorted(users)


def run_cycle(
    runtime: Runtime, *, previous: Sequence[Workload] | None = None, partial: bool = False
) -> CycleReport:
    """Run one cycle and write the events it produced to the audit log.

    :param previous: the last cycle's inventory; when given, what changed since is logged as
        ``detection.*`` events (the first cycle after start-up has none to compare with).
    :param partial: detect and reconcile only (a Docker event happened between full cycles).
    """
    started = time.monotonic()
    report = CycleReport()
    failed: list[HookFailure] = []
    report.workloads = detect(runtime, report.errors, failed)
    report.events += [f.event() for f in failed]
    if previous is not None:
        report.events += diff_events(previous, report.workloads)
    try:
        events = runtime.hooks.reconcile(runtime, report.workloads)
    except Exception as exc:  # the core's own fault (hooks isolate each plugin's)
        log.exception("reconcile failed")
        report.errors.append(f"reconcile: {exc}")
    else:
        report.events += events
        report.errors += [f"reconcile ({f.plugin}): {f.error}" for f in events.failures]
        report.events += [f.event() for f in events.failures]
    now = runtime.now()
    for user in [] if partial else users_to_enforce(runtime, report.workloads):
        try:
            limits = effective_limits(runtime, user, now=now)
            own = [w for w in report.workloads if w.owner == user]
            actions = runtime.hooks.enforce_limits(runtime, user, limits, own)
        except Exception as exc:
            log.exception("enforce_limits failed for %s", user)
            report.errors.append(f"enforce {user}: {exc}")
            continue
        report.actions += [a if a.user else attrs.evolve(a, user=user) for a in actions]
        report.errors += [f"enforce {user} ({f.plugin}): {f.error}" for f in actions.failures]
        report.events += [f.event(user) for f in actions.failures]
    if not partial:
        try:
            report.events += UpkeepStep(runtime).run(report.workloads)
        except Exception as exc:
            log.exception("lifecycle step failed")
            report.errors.append(f"lifecycle: {exc}")
    report.events += [action_event(a) for a in report.actions]
    for event in report.events:
        runtime.events.append(event)
    report.seconds = time.monotonic() - started
    return report


def action_event(action: Action) -> Event:
    """An enforcer's action as an audit event: ``<plugin>.<kind>`` (``cgroups.limits_applied``)."""
    category = action.plugin.replace("-", "_").lower() or "plugin"
    return Event(
        f"{category}.{action.kind}",
        action.user,
        action.plugin,
        {"target": action.target, "detail": action.detail},
    )
