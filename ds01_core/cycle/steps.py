"""The daemon cycle as named steps: what a step is, and the order the configuration gives them.

A cycle is a sequence of :class:`CycleStep`: the core's own (``detect``, ``reconcile``,
``enforce-limits``, ``idle``, in :mod:`ds01_core.cycle.pipeline`) and those plugins contribute
through the ``cycle_steps`` hook (the built-ins' ``reconcile-allocations``, ``owner-map``,
``label-migration``). Each has a default place; the admin reorders them with ``cycle.order``
and turns them off with ``cycle.disabled`` (:class:`~ds01_core.domain.config.cycle.CycleConfig`).
:func:`arrange` turns the steps and that section into the cycle that runs, or refuses the
section with every problem named by its path, like any other configuration error.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from ds01_core.domain.config import ConfigError, ConfigProblem
from ds01_core.domain.gpu.health import GpuHealth
from ds01_core.domain.model import Action, Event, Gpu, Workload
from ds01_core.domain.policy import CycleLimits

if TYPE_CHECKING:
    from ds01_core.domain.config.cycle import CycleConfig
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

#: the provider named for the core's own steps
CORE = "core"


@attrs.define
class CycleReport:
    """What one cycle saw and did: for the daemon's log, for tests, and for the plugins that
    publish it (``cycle_finished``)."""

    workloads: list[Workload] = attrs.Factory(list)
    events: list[Event] = attrs.Factory(list)
    actions: list[Action] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    seconds: float = 0.0
    steps: list[str] = attrs.Factory(list)  # the steps that ran, in order
    #: a partial cycle (after a Docker event: detection and reconciliation only)
    partial: bool = False
    #: when the cycle began (UTC)
    started_at: dt.datetime | None = None
    #: seconds each step took, by step name
    step_seconds: dict[str, float] = attrs.Factory(dict)
    #: the GPUs as read in this cycle (empty when they could not be read); a MIG slot's
    #: utilisation is GPM's as the idle step read it (None where the GPU has no GPM)
    gpus: list[Gpu] = attrs.Factory(list)
    #: each GPU's health as concluded in this cycle (the ``gpu-health`` step)
    health: list[GpuHealth] = attrs.Factory(list)


@attrs.define
class CycleContext:
    """What a step works on: the runtime, this cycle's report so far, and the moment it began.

    A step reads the inventory from :attr:`workloads` (filled by ``detect``) and returns the
    events it caused; a core step may also add to the report directly (actions, errors).
    """

    runtime: Runtime
    report: CycleReport
    now: dt.datetime
    partial: bool = False
    #: the previous cycle's inventory (``detect`` logs what changed since), None on the first
    previous: Sequence[Workload] | None = None
    #: an inventory given by the caller instead of asking the detectors (tests, tools)
    given: Sequence[Workload] | None = None
    #: each user's limits, resolved at most once in this cycle whichever steps ask
    limits: CycleLimits = attrs.field(
        default=attrs.Factory(lambda ctx: CycleLimits(ctx.runtime, ctx.now), takes_self=True)
    )
    #: ``time.monotonic()`` when the cycle began: a reading taken since is this cycle's
    started: float = attrs.Factory(time.monotonic)

    @property
    def workloads(self) -> list[Workload]:
        return self.report.workloads


#: a step's work: the events it caused (None for none)
StepFunction = Callable[[CycleContext], Iterable[Event] | None]


@attrs.frozen
class CycleStep:
    """One named piece of the cycle.

    :param name: what the admin calls it in ``cycle.order`` / ``cycle.disabled``
        (lowercase words joined by ``-``), unique across the core and every plugin.
    :param run: the work; an exception it raises costs only this step (logged, listed in the
        cycle's errors, and a ``plugin.failed`` event for a plugin's step).
    :param description: one line for ``ds01 plugins --cycle``.
    :param before: its default place: just before this step (after the steps already placed
        there); ``None`` or a step that is not there: at the end of the cycle.
    :param needs: steps that must run earlier in the same cycle (``detect``, which fills the
        inventory, for nearly every step); an order that breaks this, or turning off a step
        another one needs, is refused.
    :param partial: also run in the short cycle that follows a Docker event (detection and
        bookkeeping, no limits or idle stops).
    :param hook: the hook this step calls for every plugin that implements it, if any (shown
        with those plugins in the listing).
    :param provider: who provides it: ``core``, or the plugin's name (set by the core from the
        plugin that returned the step).
    """

    name: str
    run: StepFunction = attrs.field(eq=False, repr=False)
    description: str
    before: str | None = None
    needs: tuple[str, ...] = ("detect",)
    partial: bool = False
    hook: str | None = None
    provider: str = CORE


@attrs.frozen
class ArrangedStep:
    """A step in the cycle as configured: its place (None when turned off) and default place."""

    step: CycleStep
    position: int | None
    default_position: int

    @property
    def enabled(self) -> bool:
        return self.position is not None


def default_order(steps: Sequence[CycleStep]) -> list[CycleStep]:
    """The steps in their default order: each placed just before its ``before`` step (after
    those placed there already), in the order given; steps without one go last."""
    ordered: list[CycleStep] = []
    for step in steps:
        names = [s.name for s in ordered]
        if step.before in names:
            ordered.insert(names.index(step.before), step)
        else:
            ordered.append(step)
    return ordered


def unique(steps: Iterable[CycleStep]) -> tuple[list[CycleStep], list[str]]:
    """The steps with distinct names (the first one given wins) and a line per step left out."""
    kept: dict[str, CycleStep] = {}
    dropped = []
    for step in steps:
        first = kept.get(step.name)
        if first is None:
            kept[step.name] = step
            continue
        dropped.append(
            f"step {step.name!r} of {step.provider!r} left out: {first.provider!r} already "
            "provides a step of that name"
        )
    return list(kept.values()), dropped


def arrange(
    steps: Sequence[CycleStep], config: CycleConfig, source: str | None = None
) -> list[ArrangedStep]:
    """Every step with its place in the cycle that ``config`` asks for.

    Steps named in ``config.order`` run in that order; a step not named runs right after the
    last of the steps that come before it by default (and of the steps it needs), so naming two
    steps swaps them and leaves the rest in place. A step in ``config.disabled`` does not run.

    :raises ConfigError: with every problem by its path: a name no step has, a name listed
        twice, a step placed before one it needs, a needed step turned off, a step that needs
        one no active plugin provides.
    """
    default = default_order(steps)
    by_name = {s.name: s for s in default}
    known = ", ".join(by_name)
    problems: list[ConfigProblem] = []
    listed: list[str] = []
    for index, name in enumerate(config.order):
        if name not in by_name:
            problems.append(_unknown(f"cycle.order[{index}]", name, known))
        elif name in listed:
            problems.append(ConfigProblem(f"cycle.order[{index}]", f"{name!r} is listed twice"))
        else:
            listed.append(name)
    disabled: dict[str, int] = {}
    for index, name in enumerate(config.disabled):
        if name not in by_name:
            problems.append(_unknown(f"cycle.disabled[{index}]", name, known))
        disabled.setdefault(name, index)

    sequence = list(listed)
    for index, step in enumerate(default):
        if step.name not in listed:  # after every step before it by default, and its needs
            after = [s.name for s in default[:index]] + [n for n in step.needs if n in sequence]
            sequence.insert(max((sequence.index(n) + 1 for n in after), default=0), step.name)
    running = [name for name in sequence if name not in disabled]
    place = {name: i for i, name in enumerate(running)}
    needed_off: dict[str, list[str]] = {}
    for name in running:
        step = by_name[name]
        for need in step.needs:
            if need not in by_name:
                problems.append(
                    ConfigProblem(
                        "cycle.disabled",
                        f"step {name!r} ({step.provider}) needs {need!r}, which no active plugin "
                        f"provides: turn {name!r} off here, or enable the plugin that provides "
                        f"{need!r}",
                    )
                )
            elif need in disabled:
                needed_off.setdefault(need, []).append(name)
            elif place[need] > place[name]:
                where = name if name in listed else need
                problems.append(
                    ConfigProblem(
                        f"cycle.order[{config.order.index(where)}]" if where in listed else "cycle",
                        f"{name!r} must run after {need!r}, which it needs",
                    )
                )
    for need, users in needed_off.items():
        problems.append(
            ConfigProblem(
                f"cycle.disabled[{disabled[need]}]",
                f"{need!r} cannot be turned off: {', '.join(map(repr, users))} "
                f"need{'s' if len(users) == 1 else ''} it (turn those off too)",
            )
        )
    if problems:
        raise ConfigError(source, problems)
    default_place = {s.name: i for i, s in enumerate(default, 1)}
    return [
        ArrangedStep(
            by_name[name],
            place[name] + 1 if name in place else None,
            default_place[name],
        )
        for name in sequence
    ]


def _unknown(path: str, name: str, known: str) -> ConfigProblem:
    return ConfigProblem(
        path,
        f"no cycle step is called {name!r} (is its plugin disabled?); the steps are: {known}",
    )


__all__ = [
    "CORE",
    "ArrangedStep",
    "CycleContext",
    "CycleReport",
    "CycleStep",
    "StepFunction",
    "arrange",
    "default_order",
    "unique",
]
