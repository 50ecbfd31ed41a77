"""Built-in pipeline step: record the ``ds01.*`` mapping of every legacy container seen.

It runs in the reconcile step, in the order the admin gives in ``plugins.order`` (name
``label-migration``); recreating containers is left to ``ds01 admin labels migrate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.domain.labels import LEGACY_PREFIX, legacy_mapping
from ds01_core.domain.model import Event, Workload
from ds01_core.domain.state.label_migrations import record
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


@hookimpl
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    events = []
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
