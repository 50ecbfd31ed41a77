"""The GPUs as a caller may see them: slots, weights, use and holders; and the wait queue."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import GpuProvider, GpuProviderError, process_listing
from ds01_core.domain.model import Allocation, Gpu, GpuProcess, GpuSlot
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.gpu_queue import typical_wait, waiting
from ds01_core.services.errors import Unavailable
from ds01_core.services.operations import Operation, ServiceContext
from ds01_core.services.privacy import OTHER_USER, allocation_view, shows_owner


def slot_json(
    slot: GpuSlot, processes: Sequence[GpuProcess] | None, holder: Allocation | None = None
) -> dict[str, Any]:
    """One slot; ``processes`` None (JSON null) when the driver could not list them: unknown,
    which is not "none"."""
    return {
        "slot_id": slot.slot_id,
        "uuid": slot.uuid,
        "legacy_uuid": slot.legacy_uuid,
        "kind": slot.kind,
        "profile": slot.profile,
        "model": slot.model,
        "gpu_index": slot.gpu_index,
        "compute_slices": slot.compute_slices,
        "total_slices": slot.total_slices,
        "weight": slot.weight,
        "memory_total": slot.memory_total,
        "memory_used": slot.memory_used,
        "utilization": slot.utilization,
        "processes": None
        if processes is None
        else [{"pid": p.pid, "used_memory": p.used_memory} for p in processes],
        "allocation": None
        if holder is None
        else {
            "user": holder.user,
            "container": holder.container_name or holder.container,
            "container_id": holder.container if holder.bound else None,
            "since": holder.allocated_at,
            "held_after_stop": holder.stopped_at is not None,
        },
    }


def gpu_json(
    gpu: Gpu,
    processes: dict[str, list[GpuProcess]],
    holders: dict[str, Allocation] | None = None,
    *,
    read: frozenset[str] | None = None,
    health: str | None = None,
) -> dict[str, Any]:
    """One GPU and its slots; a slot not in ``read`` (None: all were read) has unknown
    processes; ``health`` is the provider's ("ok" or "degraded: <call>: <error>"), None where
    the provider does not say."""
    holders = holders or {}

    def procs(uuid: str) -> list[GpuProcess] | None:
        return processes.get(uuid, []) if read is None or uuid in read else None

    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "model": gpu.model,
        "mig_enabled": gpu.mig_enabled,
        "total_slices": gpu.total_slices,
        "memory_total": gpu.memory_total,
        "memory_used": gpu.memory_used,
        "utilization": gpu.utilization,
        "power_watts": gpu.power_watts,
        "energy_joules": gpu.energy_joules,
        "health": health,
        "slots": [slot_json(s, procs(s.uuid), holders.get(s.uuid)) for s in gpu.slots],
    }


def _holders(ctx: ServiceContext) -> dict[str, Allocation]:
    try:
        return {u: a for a in Allocations(ctx.runtime).live() for u in a.slot_uuids}
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None


def status(ctx: ServiceContext) -> dict[str, Any]:
    """Every GPU and slot with its holder; other users' holders as ``privacy`` allows.

    While the GPUs are unavailable (NVML does not answer, or an admin released them) the answer
    says so (``access``), with no GPUs, rather than failing: it is what an admin looks at then.
    Each GPU carries its ``health``; a slot whose processes could not be read has
    ``processes: null`` (unknown), never an empty list.
    """
    try:
        provider = ctx.runtime.gpu
        gpus = provider.gpus()
        listing = process_listing(provider)
        grouped: defaultdict[str, list[GpuProcess]] = defaultdict(list)
        for proc in listing.processes:
            grouped[proc.slot_uuid].append(proc)
        health = gpu_health(provider)  # after the reads: it is what they found
    except GpuUnavailableError as exc:
        return {
            "provider": ctx.runtime.config.gpu.backend,
            "description": str(exc),
            "access": access_state(ctx),
            "gpus": [],
        }
    except GpuProviderError as exc:
        raise Unavailable(str(exc)) from None
    holders = _holders(ctx)
    listed = [
        gpu_json(g, grouped, holders, read=listing.read, health=health.get(g.index)) for g in gpus
    ]
    for gpu in listed:
        for slot in gpu["slots"]:
            slot["allocation"] = allocation_view(ctx, slot["allocation"])
    return {
        "provider": provider.name,
        "description": provider.description,
        "access": access_state(ctx),
        "gpus": listed,
    }


def gpu_health(provider: GpuProvider) -> dict[int, str]:
    """GPU index -> "ok" or "degraded: <call>: <error>"; empty where the provider does not say."""
    health = getattr(provider, "health", None)
    return dict(health()) if health is not None else {}


def access_state(ctx: ServiceContext) -> dict[str, Any]:
    """``available``, ``unavailable`` (the error, since when, the next retry) or ``released``."""
    return ctx.runtime.gpu_state()


def queue(ctx: ServiceContext) -> list[dict[str, Any]]:
    """The GPU wait queue in order; other users' tickets show as ``privacy`` allows. Each row's
    ``estimated_wait_seconds`` is a rough guess: its position times the median wait of the
    requests served in the last week (None when too few were served to say)."""
    try:
        tickets = waiting(ctx.runtime.state.db)
        typical = typical_wait(ctx.runtime.state.db, ctx.runtime.now()) if tickets else None
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None
    rows = []
    for position, t in enumerate(tickets, start=1):
        own = ctx.caller.admin or t.user == ctx.caller.name
        rows.append(
            {
                "position": position,
                "ticket": t.ticket if own else None,
                "user": t.user if shows_owner(ctx, t.user) else OTHER_USER,
                "container": t.container_name if own else None,
                "request": t.request,
                "waiting_since": t.enqueued_at,
                "estimated_wait_seconds": None if typical is None else round(typical * position),
                "mine": t.user == ctx.caller.name,
            }
        )
    return rows


OPERATIONS = (
    Operation(
        "gpu.status", "GET", "/v1/gpus", status, summary="GPUs and MIG slots, with their holders."
    ),
    Operation("gpu.queue", "GET", "/v1/gpus/queue", queue, summary="Requests waiting for a GPU."),
)
