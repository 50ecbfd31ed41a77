"""Hook specifications of the daemon's cycle: detect, reconcile, enforce, idle, added steps.

Called by the daemon in every cycle (``detect_workloads`` also for the live ``ds01 workloads``
listing). The rules common to every hook are in :mod:`ds01_core.framework.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.framework.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from ds01_core.cycle.steps import CycleReport, CycleStep
    from ds01_core.domain.model import (
        Action,
        EffectiveLimits,
        Event,
        Workload,
    )
    from ds01_core.domain.policy import Policy
    from ds01_core.framework.runtime import Runtime


@hookspec
def detect_workloads(runtime: Runtime) -> Sequence[Workload]:
    """Report the GPU workloads this detector sees right now.

    Called at the start of every lifecycle cycle (and for the live ``ds01 workloads`` listing),
    by every detector: Docker containers, host GPU processes, or anything a third party adds
    (Slurm jobs, VMs …).

    :param runtime: the process's runtime (config, GPU provider, state store, Docker adapter).
    :return: the workloads seen, possibly empty. The core merges all detectors' results by
        ``(kind, id)``: for a duplicate, the first reporter's record wins and later ones only
        add GPU slots and pids.

    Not firstresult: every detector reports.

    If an implementation raises: that detector is skipped for the cycle (its workloads are
    missing from this inventory); the failure is logged, listed in the cycle's errors and
    written to the audit log as ``plugin.failed``. The other detectors' workloads are kept.
    """


@hookspec
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> Sequence[Event]:
    """Bring recorded state in line with what is really there.

    Called once per cycle after detection, and once when the daemon starts. Typical work:
    release allocations whose container is gone, record allocations found only on containers,
    expire grants and overrides.

    :param runtime: the process's runtime.
    :param workloads: the merged inventory from ``detect_workloads``.
    :return: the events describing what was changed (the core writes them to the audit log).

    Not firstresult: every reconciler runs.

    If an implementation raises: its events are lost for that cycle (what it wrote before
    raising stays written) and it is tried again next cycle; the failure is logged, listed in the
    cycle's errors (``ds01d --once`` exits 1) and written to the audit log as
    ``plugin.failed``. The other reconcilers run and their events are kept, so one broken
    plugin never stops allocations from being released.
    """


@hookspec
def enforce_limits(
    runtime: Runtime, user: str, limits: EffectiveLimits, workloads: Sequence[Workload]
) -> Sequence[Action]:
    """Make one user's resource limits hold (cgroups, quotas, …).

    Called every cycle for every user who owns a workload or has limits configured, and when a
    container of that user is about to be created.

    :param runtime: the process's runtime.
    :param user: the (normalised) user name.
    :param limits: the user's effective limits, resolved from defaults, group, user and any
        unexpired override.
    :param workloads: that user's workloads from this cycle's inventory.
    :return: the actions taken (an empty sequence when nothing had to change).

    Not firstresult: every enforcer runs.

    If an implementation raises: its actions for that user are lost for that cycle and it is
    tried again next cycle; the failure is logged, listed in the cycle's errors and written to
    the audit log as ``plugin.failed`` (with the user). The other enforcers' actions are kept.
    """


@hookspec
def cycle_steps() -> Sequence[CycleStep]:
    """Add named steps to the daemon's cycle (``detect → reconcile → enforce-limits → idle``).

    Called once per runtime, when the daemon first plans its cycle (at start-up and after each
    configuration reload), and by ``ds01 plugins --cycle`` and ``ds01 config check``, which show
    and check the order. It declares; it must not do the work itself.

    :return: :class:`~ds01_core.cycle.steps.CycleStep` objects: each a unique ``name`` the
        admin uses in ``cycle.order`` and ``cycle.disabled``, the ``run(ctx)`` function called
        once per cycle with a :class:`~ds01_core.cycle.steps.CycleContext` (the runtime, the
        inventory in ``ctx.workloads``, the moment the cycle began) that returns the events to
        write to the audit log, a one-line ``description``, a default place (``before``: the
        step it goes in front of), the steps it ``needs`` earlier in the cycle (``detect`` by
        default) and whether it also runs in the ``partial`` cycle after a Docker event. The
        core sets ``provider`` to the plugin's name.

    Not firstresult: every plugin's steps are in the cycle, in the order the admin gives in
    ``cycle.order`` (steps not named there keep their default place). A step whose name is
    already taken (by the core or a plugin called earlier) is left out, and the cycle reports
    it as an error.

    If an implementation raises: none of that plugin's steps run; the failure is logged,
    listed in every cycle's errors and written to the audit log as ``plugin.failed``. The
    other plugins' steps run. A step's ``run`` that raises costs only that step in that cycle
    (the same error and ``plugin.failed`` event, the hook named ``cycle step <name>``).
    """


@hookspec(firstresult=True)
def on_idle(
    runtime: Runtime, workload: Workload, idle_seconds: float, policy: Policy
) -> str | None:
    """Decide what to do about a workload that has been idle.

    Called every cycle for each container whose activity signals have all been below their
    thresholds for the configured idle window (``lifecycle.idle_window`` cycles), once it is
    past ``lifecycle.start_grace`` and not kept alive or exempted. A container with no known
    signal is never idle, so never reaches this hook.

    :param runtime: the process's runtime.
    :param workload: the idle workload.
    :param idle_seconds: how long it has been idle.
    :param policy: the :class:`ds01_core.domain.policy.Policy` in force for it, resolved for
        its origin and its owner's limits: ``policy.idle_timeout`` is the timeout in force
        (seconds, already multiplied by ``policy.demand_factor`` while GPUs are in high
        demand), and ``policy.warn_at`` the fractions of it at which the owner is warned.
    :return: ``"warn"``, ``"stop"`` or ``"none"``; ``None`` to let the next plugin decide.

    firstresult: the first non-None answer is taken. The built-in policy is ``trylast``, so a
    plugin can overrule it (for example to keep a class of containers alive).

    Only idleness is asked about: a container at its ``max_runtime`` is stopped without this
    hook (an admin's hard cap, lifted only by a logged exemption; see
    :mod:`ds01_core.cycle.runtime_limits`), so keeping a container alive here never lets it
    run past its cap.

    If an implementation raises: nothing is done about that container in that cycle (no warning,
    no stop) and a ``lifecycle.error`` event names it; the next cycle asks again.
    """


@hookspec
def cycle_finished(runtime: Runtime, report: CycleReport) -> None:
    """Look at what a cycle saw and did, once it is over.

    Called by the daemon after every cycle (full and partial; ``report.partial`` says which),
    once its events are in the audit log. This is where a plugin that publishes the server's
    state (metrics, a dashboard) takes its copy, so that answering its own clients never costs
    a Docker or NVML call.

    :param runtime: the process's runtime.
    :param report: the cycle's :class:`~ds01_core.cycle.steps.CycleReport`: the inventory
        (``workloads``), the GPUs read (``gpus``) and their health (``health``), the events,
        actions and errors, how long it took (``seconds``, and ``step_seconds`` per step).
        Read it; do not change it.

    Not firstresult: every plugin is called.

    If an implementation raises: the failure is logged and written to the audit log as
    ``plugin.failed`` (the hook named ``cycle_finished``); the cycle's work stands and the
    other plugins are called. It should return quickly: the next cycle waits for it.
    """
