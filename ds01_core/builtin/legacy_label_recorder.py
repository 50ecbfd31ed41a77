"""Built-in cycle step ``label-migration``: record the ``ds01.*`` mapping of every legacy container.

It runs where ``cycle.order`` puts it (by default after the GPU allocations are reconciled,
also in the partial cycle after a Docker event); recreating containers is left to
``ds01 admin labels migrate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.cycle.steps import CycleStep
from ds01_core.domain.labels import LEGACY_PREFIX, legacy_mapping
from ds01_core.domain.model import Event, Workload
from ds01_core.domain.state.label_migrations import record
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


@hookimpl
def cycle_steps() -> list[CycleStep]:
    return [
        CycleStep(
            "label-migration",
            lambda ctx: record_legacy(ctx.runtime, ctx.workloads),
            "the ds01.* mapping of each container with legacy labels recorded",
            before="reconcile",
            partial=True,
        )
    ]


def record_legacy(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    """A ``labels.migration_recorded`` event per legacy container recorded for the first time."""
    events: list[Event] = []
    now = runtime.now()
    legacy = [
        w
        for w in workloads
        if w.kind == "container" and any(k.startswith(LEGACY_PREFIX) for k in w.labels)
    ]
    if not legacy:
        return events
    with runtime.state.transaction() as db:
        for workload in legacy:
            raw = {k: v for k, v in workload.labels.items() if k.startswith(LEGACY_PREFIX)}
            if record(db, workload.id, workload.name, raw, now):
                events.append(
                    Event(
                        "labels.migration_recorded",
                        workload.owner,
                        "labels",
                        {
                            "container": workload.name,
                            "container_id": workload.id,
                            "mapping": legacy_mapping(raw),
                        },
                    )
                )
    return events
