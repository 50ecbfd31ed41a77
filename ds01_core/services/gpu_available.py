"""What GPUs the caller could have now: ``gpu.available``.

The slots free now, by kind and MIG profile, and how many of each the caller's quota lets them
take.

"Free" is what an allocation could be given now: not held by any container (held-after-stop
included), not on a drained GPU, not kept by a plugin for itself (``reserved_gpu_slots``, e.g.
the GPUs Slurm schedules). Requests already waiting in the GPU queue are served first; the
answer says how many wait.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import GpuProviderError
from ds01_core.domain.model import GpuSlot
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.gpu_health import undrained
from ds01_core.domain.state.gpu_queue import waiting
from ds01_core.domain.user_limits import effective_limits
from ds01_core.services.errors import Unavailable
from ds01_core.services.gpus import access_state
from ds01_core.services.operations import Operation, ServiceContext


def _kind(slot: GpuSlot) -> str:
    return f"mig {slot.profile}" if slot.kind == "mig" and slot.profile else slot.kind


def available(ctx: ServiceContext) -> dict[str, Any]:
    """Free slots now, grouped by kind (``gpu``, ``mig <profile>``), each with how many of them
    the caller's ``max_gpu_equivalents`` lets them take (in all; one container takes at most
    ``max_gpu_slots_per_container``)."""
    runtime, user = ctx.runtime, ctx.caller.name
    now = runtime.now()
    try:
        slots = runtime.gpu.slots()
    except GpuUnavailableError as exc:
        return {"access": access_state(ctx), "description": str(exc), "free": [], "user": user}
    except GpuProviderError as exc:
        raise Unavailable(str(exc)) from None
    allocations = Allocations(runtime)
    try:
        db = runtime.state.db
        live = allocations.live()
        held = {u for a in live for u in a.slot_uuids}
        free, drained = undrained(db, [s for s in slots if s.uuid not in held])
        queued = len(waiting(db))
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None
    reserved = runtime.hooks.reserved_gpu_slots(runtime, slots)
    free = [s for s in free if s.uuid not in reserved]
    limits = effective_limits(runtime, user, now=now)
    quota = limits.get("max_gpu_equivalents")
    in_use = sum(a.weight for a in live if a.user == user)
    left = None if quota is None else max(0.0, quota - in_use)
    per_container = limits.get("max_gpu_slots_per_container")
    full_gpu_allowed = limits.get("allow_full_gpu") is not False
    groups: dict[str, list[GpuSlot]] = {}
    for slot in sorted(free, key=lambda s: (s.gpu_index, len(s.slot_id), s.slot_id)):
        groups.setdefault(_kind(slot), []).append(slot)
    rows = []
    for kind, members in groups.items():
        weight = min(s.weight for s in members)
        take = len(members)
        if left is not None:
            take = min(take, math.floor(left / weight + 1e-9) if weight > 0 else take)
        rows.append(
            {
                "kind": kind,
                "profile": members[0].profile,
                "model": members[0].model,
                "free": len(members),
                "weight": weight,
                "slots": [s.slot_id for s in members],
                "you_can_take": max(0, take),
            }
        )
    return {
        "user": user,
        "access": access_state(ctx),
        "free": rows,
        "quota": {
            "limit": quota,
            "in_use": round(in_use, 4),
            "left": None if left is None else round(left, 4),
            "max_gpu_slots_per_container": per_container,
            "allow_full_gpu": full_gpu_allowed,
        },
        "waiting": queued,
        "reserved": len([s for s in slots if s.uuid in reserved]),
        "drained_gpus": len(drained),
    }


OPERATIONS = (
    Operation(
        "gpu.available",
        "GET",
        "/v1/gpus/available",
        available,
        summary="GPU slots free now, and how many of them your quota lets you take.",
    ),
)
