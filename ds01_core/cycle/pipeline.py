"""One daemon cycle: its steps (detect → gpu-health → reconcile → enforce → idle) run in order.

The cycle is the only place the daemon's periodic work is sequenced. It is a list of named
steps (:mod:`ds01_core.cycle.steps`): the core's own, defined here, and those plugins add
through the ``cycle_steps`` hook, in the order ``cycle.order`` gives, without those in
``cycle.disabled`` (see docs/cycle.md). A step that raises costs only itself; a step that calls
a hook calls it one plugin at a time (:mod:`ds01_core.framework.hooks`), so a plugin that raises
costs only its own answer: its failure is logged, written to the audit log as
``plugin.failed`` and listed in the cycle's errors, and every other plugin's results are kept,
because one broken plugin must not stop GPUs from being released or limits from being applied.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from ds01_core.cycle import gpu_health
from ds01_core.cycle.detection.inventory import diff_events
from ds01_core.cycle.detection.shared import single_look
from ds01_core.cycle.steps import (
    CORE,
    ArrangedStep,
    CycleContext,
    CycleReport,
    CycleStep,
    arrange,
    unique,
)
from ds01_core.cycle.upkeep import UpkeepStep
from ds01_core.domain.model import Action, Event, Gpu, GpuSlot, Workload
from ds01_core.framework.hooks import HookFailure

if TYPE_CHECKING:
    from ds01_core.domain.config.cycle import CycleConfig
    from ds01_core.framework.hooks import Hooks
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: the runtime memo under which the core keeps its plan of the cycle (one per configuration)
PLAN_KEY = "core.cycle-plan"


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
    runtime: Runtime,
    errors: list[str] | None = None,
    failed: list[HookFailure] | None = None,
    *,
    one_look: bool = False,
) -> list[Workload]:
    """The merged inventory; detectors that raised are skipped (and named in ``errors``, and
    handed over in ``failed`` for the audit log).

    :param one_look: a listing outside the daemon's cycles: report what is there now, without
        waiting for the confirmation across cycles the daemon asks of host GPU processes.
    """
    with single_look() if one_look else contextlib.nullcontext():
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


# -- the core's steps ---------------------------------------------------------------------------


def _detect(ctx: CycleContext) -> list[Event]:
    failed: list[HookFailure] = []
    if ctx.given is not None:
        ctx.report.workloads = list(ctx.given)
    else:
        ctx.report.workloads = detect(ctx.runtime, ctx.report.errors, failed)
    events = [f.event() for f in failed]
    if ctx.previous is not None:
        events += diff_events(ctx.previous, ctx.workloads)
    return events


def _reconcile(ctx: CycleContext) -> list[Event]:
    events = ctx.runtime.hooks.reconcile(ctx.runtime, ctx.workloads)
    ctx.report.errors += [f"reconcile ({f.plugin}): {f.error}" for f in events.failures]
    return [*events, *(f.event() for f in events.failures)]


def _enforce(ctx: CycleContext) -> list[Event]:
    runtime, report = ctx.runtime, ctx.report
    events: list[Event] = []
    for user in users_to_enforce(runtime, ctx.workloads):
        try:
            limits = ctx.limits(user)
            own = [w for w in ctx.workloads if w.owner == user]
            actions = runtime.hooks.enforce_limits(runtime, user, limits, own)
        except Exception as exc:  # the core's own fault (hooks isolate each plugin's)
            log.exception("enforce_limits failed for %s", user)
            report.errors.append(f"enforce {user}: {exc}")
            continue
        report.actions += [a if a.user else attrs.evolve(a, user=user) for a in actions]
        report.errors += [f"enforce {user} ({f.plugin}): {f.error}" for f in actions.failures]
        events += [f.event(user) for f in actions.failures]
    return events


def _idle(ctx: CycleContext) -> list[Event]:
    step = UpkeepStep(ctx.runtime, ctx.limits)
    events = step.run(ctx.workloads)
    if step.gpu is not None:
        ctx.report.gpus = with_measured_utilization(ctx.report.gpus, step.gpu.slots)
    return events


def with_measured_utilization(gpus: Sequence[Gpu], slots: Mapping[str, GpuSlot]) -> list[Gpu]:
    """``gpus`` with the utilisation the idle step measured for slots that had none (MIG: from
    GPM, read once a cycle there), so the report says what the cycle knew (accounting, the
    exporter) without a second GPM read, which would span microseconds, not the cycle."""
    out = []
    for gpu in gpus:
        measured = tuple(
            attrs.evolve(s, utilization=slots[s.uuid].utilization)
            if s.utilization is None and s.uuid in slots
            else s
            for s in gpu.slots
        )
        out.append(gpu if measured == gpu.slots else attrs.evolve(gpu, slots=measured))
    return out


CORE_STEPS: tuple[CycleStep, ...] = (
    CycleStep(
        "detect",
        _detect,
        "ask every detector what runs now, merge the reports, log what changed",
        needs=(),
        partial=True,
        hook="detect_workloads",
    ),
    CycleStep(
        "gpu-health",
        gpu_health.run,
        "each GPU's readings judged (ECC, XID, heat, lost): health stored, changes audited, "
        "unhealthy GPUs drained",
    ),
    CycleStep(
        "reconcile",
        _reconcile,
        "every plugin's reconcile hook: records brought in line with what runs",
        partial=True,
        hook="reconcile",
    ),
    CycleStep(
        "enforce-limits",
        _enforce,
        "every plugin's enforce_limits hook, for each user with workloads or limits",
        hook="enforce_limits",
    ),
    CycleStep(
        "idle",
        _idle,
        "idle containers warned and stopped, runtimes capped, leftovers removed, quota warnings",
    ),
)


# -- the plan: which steps run, in which order -------------------------------------------------


@attrs.frozen
class CyclePlan:
    """The cycle as configured: every step with its place, and what went wrong gathering them
    (a plugin whose ``cycle_steps`` raised, a step name taken twice)."""

    steps: list[ArrangedStep]
    failures: list[HookFailure] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)

    def running(self, *, partial: bool = False) -> list[CycleStep]:
        """The steps that run, in order (in a partial cycle, only those marked ``partial``)."""
        chosen = sorted((a for a in self.steps if a.position is not None), key=_position)
        return [a.step for a in chosen if a.step.partial or not partial]


def _position(arranged: ArrangedStep) -> int:
    return arranged.position or 0


def plan_cycle(hooks: Hooks, config: CycleConfig, source: str | None = None) -> CyclePlan:
    """The core's steps and every plugin's, arranged as ``config`` (``cycle:``) asks.

    :raises ConfigError: the section names a step that is not there or breaks what a step
        needs (every problem with its path).
    """
    contributed = hooks.cycle_steps()
    steps, problems = unique([*CORE_STEPS, *contributed])
    for problem in problems:
        log.error("cycle: %s", problem)
    return CyclePlan(arrange(steps, config, source), contributed.failures, problems)


def cycle_plan(runtime: Runtime) -> CyclePlan:
    """This runtime's plan, made once (a reload is a new runtime, so a new plan).

    :raises ConfigError: as :func:`plan_cycle`; nothing is kept then, so the daemon refuses the
        configuration and the next call asks again.
    """
    return runtime.memo(
        PLAN_KEY,
        lambda: plan_cycle(runtime.hooks, runtime.config.cycle, runtime.config.source),
    )


# -- one cycle ------------------------------------------------------------------------------


def run_cycle(
    runtime: Runtime,
    *,
    previous: Sequence[Workload] | None = None,
    partial: bool = False,
    workloads: Sequence[Workload] | None = None,
) -> CycleReport:
    """Run one cycle and write the events it produced to the audit log.

    :param previous: the last cycle's inventory; when given, what changed since is logged as
        ``detection.*`` events (the first cycle after start-up has none to compare with).
    :param partial: only the steps marked ``partial`` (a Docker event happened between full
        cycles): detection and reconciliation, no limits or idle stops.
    :param workloads: the inventory to use instead of asking the detectors (the ``detect``
        step takes it as it is).
    :raises ConfigError: the ``cycle:`` section does not fit the steps there are.
    """
    started = time.monotonic()
    report = CycleReport(partial=partial, started_at=runtime.now())
    plan = cycle_plan(runtime)
    report.errors += [f"cycle_steps ({f.plugin}): {f.error}" for f in plan.failures]
    report.events += [f.event() for f in plan.failures]
    report.errors += [f"cycle: {problem}" for problem in plan.problems]
    ctx = CycleContext(
        runtime, report, runtime.now(), partial=partial, previous=previous, given=workloads
    )
    for step in plan.running(partial=partial):
        report.steps.append(step.name)
        step_started = time.monotonic()
        try:
            report.events += step.run(ctx) or ()
        except Exception as exc:
            log.exception("cycle step %s (%s) failed", step.name, step.provider)
            if step.provider == CORE:
                report.errors.append(f"{step.name}: {exc}")
            else:
                failure = HookFailure(step.provider, f"cycle step {step.name}", exc)
                report.errors.append(f"{step.name} ({step.provider}): {exc}")
                report.events.append(failure.event())
        finally:
            report.step_seconds[step.name] = time.monotonic() - step_started
    report.events += [action_event(a) for a in report.actions]
    for event in report.events:
        runtime.events.append(event)
    report.seconds = time.monotonic() - started
    for failure in runtime.hooks.cycle_finished(runtime, report).failures:
        runtime.events.append(failure.event())
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
