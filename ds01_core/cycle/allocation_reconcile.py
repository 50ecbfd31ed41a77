"""Keeping GPU allocation records true to the containers Docker really has, every cycle.

Releases what is gone, what was held past ``allocation.gpu_hold_after_stop`` and what a
process allocated but died before creating; binds allocations whose binder died; adopts
running containers that reach GPU slots without a record, and reports those whose slots are
allocated to another container (``gpu.conflict``: what then happens to them is
``allocation.foreign_slot_action``, applied by the built-in ``gpu-allocations`` plugin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from ds01_core.domain.container_facts import UUIDS_LABEL
from ds01_core.domain.model import Event, Workload
from ds01_core.domain.state.allocations import STOPPED_STATES, Allocations, inventory_slots
from ds01_core.domain.user_limits import effective_limits

CONFLICT_EVENT = "gpu.conflict"


def reconcile_allocations(allocations: Allocations, workloads: Sequence[Workload]) -> list[Event]:
    """Make the records match the containers that exist. Returns the events of adoptions
    and conflicts; releases log their own ``gpu.released`` events."""
    runtime = allocations.runtime
    now = runtime.now()
    hold = dt.timedelta(seconds=float(runtime.config.allocation.gpu_hold_after_stop))
    containers = {w.id: w for w in workloads if w.kind == "container"}
    by_name = {w.name: w for w in containers.values()}
    to_release: dict[str, list[int]] = {}
    for allocation in allocations.live():
        assert allocation.id is not None
        if not allocation.bound:
            named = by_name.get(allocation.container_name or "")
            if named is not None and named.labels.get(UUIDS_LABEL):
                allocations.bind(allocation.id, named.id)  # created, but the binder died
                continue
            if not allocations.allocating_process_alive(allocation.id):
                to_release.setdefault(
                    "the allocating process ended before creating the container", []
                ).append(allocation.id)
            continue
        workload = containers.get(allocation.container)
        if workload is None:
            to_release.setdefault("container removed", []).append(allocation.id)
        elif workload.status in STOPPED_STATES:
            stopped_at = allocation.stopped_at
            if stopped_at is None:
                allocations.set_stopped(allocation.id, now)
            elif now - stopped_at >= hold:
                to_release.setdefault(
                    f"stopped for longer than gpu_hold_after_stop "
                    f"({runtime.config.allocation.gpu_hold_after_stop})",
                    [],
                ).append(allocation.id)
        elif allocation.stopped_at is not None:
            allocations.set_stopped(allocation.id, None)  # running again: the hold ends
    for reason, ids in to_release.items():
        allocations.release(ids, reason)
    return adopt(allocations, containers.values(), now)


def adopt(
    allocations: Allocations, containers: Iterable[Workload], now: dt.datetime
) -> list[Event]:
    """Record running containers that reach GPUs without a record (made before ds01 ran, or
    by an admin with the real socket); report conflicts and quota overruns."""
    runtime = allocations.runtime
    events = []
    slots = {s.uuid: s for s in inventory_slots(runtime)}
    for workload in containers:
        if workload.status != "running" or not workload.gpu_slots or workload.unrestricted_gpu:
            continue
        with allocations.state.transaction() as db:
            live = allocations.live(db)
            if any(a.container == workload.id for a in live):
                continue
            holders = {u: a for a in live for u in a.slot_uuids}
            clash = [holders[u] for u in workload.gpu_slots if u in holders]
            if clash:
                events.append(
                    Event(
                        CONFLICT_EVENT,
                        workload.owner,
                        "allocation",
                        {
                            "container": workload.name,
                            "container_id": workload.id,
                            "uuids": workload.gpu_slots,
                            "also_held_by": sorted({a.container for a in clash}),
                            "also_held_by_users": sorted({a.user for a in clash}),
                        },
                    )
                )
                continue
            weight = sum(slots[u].weight for u in workload.gpu_slots if u in slots)
            allocations.insert_bound(
                db, workload.owner, workload.id, workload.name, workload.gpu_slots, weight, now
            )
            mine = sum(a.weight for a in live if a.user == workload.owner) + weight
            limits = effective_limits(runtime, workload.owner, db=db, now=now)
        details = {
            "container": workload.name,
            "container_id": workload.id,
            "uuids": workload.gpu_slots,
            "weight": round(weight, 4),
            "origin": workload.origin,
        }
        events.append(Event("gpu.adopted", workload.owner, "allocation", details))
        quota = limits.get("max_gpu_equivalents")
        if quota is not None and mine > quota + 1e-9:
            events.append(
                Event(
                    "gpu.over_quota",
                    workload.owner,
                    "allocation",
                    {**details, "in_use": round(mine, 4), "quota": quota},
                )
            )
    return events
