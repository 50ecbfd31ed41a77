"""One of the caller's containers in detail: ``containers.inspect``.

Its image, state, GPU slots, resource limits, the lifecycle limits that apply to it,
created/started, idle time and keep-alive.

Only the caller's own containers are found (an admin may name a ``user``); another user's is
"no container of yours", as for every container operation, so names are not disclosed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from ds01_core.cycle.detection.inventory import workload_json
from ds01_core.domain.policy import explain_policy
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.grants import open_grants
from ds01_core.domain.state.idle_streaks import streak_of
from ds01_core.domain.user_limits import effective_limits
from ds01_core.services.containers import service_errors
from ds01_core.services.errors import Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext
from ds01_core.services.user_containers import ContainerService
from ds01_core.services.workloads import slot_names, with_slot_ids


def _resources(inspect: dict[str, Any] | None) -> dict[str, Any]:
    """The engine's limits on the container (None where it has none)."""
    host = (inspect or {}).get("HostConfig") or {}
    nano = host.get("NanoCpus") or 0
    return {
        "memory_bytes": host.get("Memory") or None,
        "cpus": nano / 1e9 if nano else None,
        "pids": host.get("PidsLimit") or None,
        "shm_bytes": host.get("ShmSize") or None,
    }


def _slots(ctx: ServiceContext, uuids: list[str]) -> list[dict[str, Any]]:
    try:
        by_uuid = {s.uuid: s for s in ctx.runtime.gpu.slots()}
    except Exception:  # the GPUs unreadable: the slots are still named by UUID
        by_uuid = {}
    rows = []
    for uuid in uuids:
        slot = by_uuid.get(uuid)
        rows.append(
            {
                "uuid": uuid,
                "slot_id": slot.slot_id if slot else None,
                "kind": slot.kind if slot else None,
                "profile": slot.profile if slot else None,
                "model": slot.model if slot else None,
                "weight": slot.weight if slot else None,
            }
        )
    return rows


@service_errors
def inspect(ctx: ServiceContext, name: str, user: str | None = None) -> dict[str, Any]:
    """One of the caller's containers by name (or id prefix of 6 or more), in detail."""
    svc = ContainerService(ctx.runtime, ctx.target_user(user, "another user's containers"))
    workload = svc.find(name)
    runtime = ctx.runtime
    now = runtime.now()
    view = with_slot_ids(workload_json(workload), slot_names(ctx))
    try:
        held = Allocations(runtime).for_container(workload.id)
        db = runtime.state.db
        streak = streak_of(db, workload.id)
        keepalives = [
            row["expires"]
            for row in open_grants(db, "keepalive", svc.user)
            if row["target"] == f"container:{workload.id}"
            and dt.datetime.fromisoformat(row["expires"]) > now
        ]
    except (OSError, sqlite3.Error) as exc:
        raise Unavailable(f"cannot read the state store: {exc}") from None
    limits = effective_limits(runtime, svc.user, now=now)
    return {
        **view,
        "user": svc.user,
        "labels": dict(workload.labels),
        "gpu": {
            "slots": _slots(ctx, list(workload.gpu_slots)),
            "weight": round(sum(a.weight for a in held), 4),
            "held_after_stop": any(a.stopped_at is not None for a in held),
        },
        "resources": _resources(svc.docker.inspect_container(workload.id)),
        "policy": explain_policy(runtime.config, limits, workload.origin),
        "idle": {
            "idle_since": streak.since,
            "idle_seconds": (now - streak.since).total_seconds() if streak.since else 0.0,
            "idle_cycles": streak.cycles,
            "last_active_signal": streak.last_active_signal,
            "keepalive_until": max(keepalives) if keepalives else None,
        },
    }


OPERATIONS = (
    Operation(
        "containers.inspect",
        "GET",
        "/v1/containers/{name}",
        inspect,
        (Param("name", required=True), Param("user")),
        summary="One of your containers in detail: image, state, GPU slots, limits, idle time.",
    ),
)
