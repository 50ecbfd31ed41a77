"""Who decides which free slots a request gets: the allocator plugin, or the request itself.

Most requests are decided by the ``allocate_gpu`` plugin, among the free slots no plugin keeps
for itself (``reserved_gpu_slots``, e.g. the GPUs Slurm schedules) and only when no one waits
ahead in the queue. A request that names its exact slots (``GpuRequest.slot_uuids``: a Slurm
job's GPUs, which Slurm already chose and queued for) is decided here: those slots, if they
exist and are free. The core's checks of the answer (:func:`check_decision`: free, quota) apply
to both.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.domain.model import (
    Allocation,
    AllocationDecision,
    EffectiveLimits,
    GpuRequest,
    GpuSlot,
)
from ds01_core.domain.state.gpu_queue import waiting

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def decide(
    runtime: Runtime,
    db: sqlite3.Connection,
    request: GpuRequest,
    ticket: int | None,
    all_slots: Sequence[GpuSlot],
    free: Sequence[GpuSlot],
    mine: Sequence[Allocation],
    limits: EffectiveLimits,
    now: dt.datetime,
) -> tuple[AllocationDecision | None, list[GpuSlot], str | None]:
    """The decision, the free slots it may choose from (for :func:`check_decision`), and the
    words for free slots kept back by a reservation (None when none were)."""
    if request.slot_uuids:
        return pinned_decision(request, all_slots, free), list(free), None
    reserved = runtime.hooks.reserved_gpu_slots(runtime, all_slots)
    kept = [s for s in free if s.uuid not in reserved]
    withheld = reserved_words([s for s in free if s.uuid in reserved], reserved)
    queue = waiting(db, now=now)
    if queue and queue[0].ticket != ticket:
        ahead = len(queue) if ticket is None else [t.ticket for t in queue].index(ticket)
        refused = f"{ahead} request(s) ahead in the GPU queue"
        if ticket is None:
            refused += "; add --wait to join the queue"
        return AllocationDecision(refused=refused), kept, withheld
    decision = runtime.hooks.allocate_gpu(runtime, request, kept, list(all_slots), mine, limits)
    return decision, kept, withheld


def pinned_decision(
    request: GpuRequest, all_slots: Sequence[GpuSlot], free: Sequence[GpuSlot]
) -> AllocationDecision:
    """Exactly the slots the request names, or a refusal that names the ones that cannot be
    had (gone from the inventory, or held by another container or drained)."""
    by_uuid = {s.uuid: s for s in all_slots}
    missing = [u for u in request.slot_uuids if u not in by_uuid]
    if missing:
        return AllocationDecision(
            refused=f"GPU slot(s) {', '.join(missing)} do not exist on this server"
        )
    free_uuids = {s.uuid for s in free}
    taken = [by_uuid[u].slot_id for u in request.slot_uuids if u not in free_uuids]
    if taken:
        return AllocationDecision(
            refused=f"GPU slot(s) {', '.join(taken)} are held by another container or drained"
        )
    return AllocationDecision(slots=[by_uuid[u] for u in dict.fromkeys(request.slot_uuids)])


def reserved_words(withheld: Sequence[GpuSlot], reserved: Mapping[str, str]) -> str | None:
    """ "2 free GPU slot(s) are kept for Slurm jobs (ds01 job submit)", or None."""
    if not withheld:
        return None
    why = sorted({reserved[s.uuid] for s in withheld})
    return f"{len(withheld)} free GPU slot(s) are kept for {'; '.join(why)}"
