"""The whole server at a glance for admins: ``admin.users`` and ``admin.health``.

Every user ds01 knows (``admin.users``) and the health tiles' numbers (``admin.health``), each
in one call for the admin panel, the REST API and scripts.

Both are composed from what the other operations read (the inventory, the state store's
allocations, overrides and queue, the GPU provider and the daemon's GPU health table, the audit
log), so they can never disagree with ``ds01 gpu status``, ``ds01 workloads`` or
``ds01 config show --user``. A part that cannot be read is reported in ``warnings`` rather than
failing the whole answer: these pages are what an admin looks at when something is wrong.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from typing import Any

from ds01_core.domain.audit_log import event_time
from ds01_core.domain.model import Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.gpu_queue import waiting
from ds01_core.domain.state.overrides import active_overrides
from ds01_core.domain.user_limits import effective_limits
from ds01_core.services.errors import ServiceError
from ds01_core.services.operations import Operation, ServiceContext

#: the limits the users table sums up (the rest: ``ds01 config show --user NAME``)
SUMMARY_KEYS = (
    "max_gpu_equivalents",
    "max_gpu_slots_per_container",
    "max_containers_per_user",
    "idle_timeout",
    "max_runtime",
)
#: how far back ``last_activity`` looks in the audit log
ACTIVITY_DAYS = 90


def _inventory(ctx: ServiceContext, warnings: list[str]) -> list[Workload]:
    """Every workload now (one look), or none with a warning when detection fails."""
    # lazy: the cycle brings the docker SDK (~100 ms), needed only by these admin calls
    from ds01_core.cycle.pipeline import detect

    errors: list[str] = []
    try:
        found = detect(ctx.runtime, errors, one_look=True)
    except Exception as exc:  # reported, not raised: the rest of the answer still helps
        warnings.append(f"cannot list the containers: {exc}")
        return []
    warnings.extend(errors)
    return found


def _containers(workloads: list[Workload]) -> list[Workload]:
    return [w for w in workloads if w.kind == "container"]


def _known_users(ctx: ServiceContext, workloads: list[Workload], holders: set[str]) -> list[str]:
    """Users with limits of their own in the file, a group's members, workload owners,
    GPU holders and users with an override in force."""
    limits = ctx.runtime.config.limits
    users = {w.owner for w in workloads if w.owner and w.owner != "unknown"}
    users.update(limits.users)
    for group in limits.groups.values():
        users.update(group.members)
    users.update(holders)
    users.update(o.user for o in limits.overrides)
    return sorted(users)


def _last_activity(ctx: ServiceContext, users: set[str], warnings: list[str]) -> dict[str, str]:
    """Each user's latest event in the audit log (the last :data:`ACTIVITY_DAYS` days)."""
    since = ctx.runtime.now() - dt.timedelta(days=ACTIVITY_DAYS)
    latest: dict[str, dt.datetime] = {}
    try:
        for record in ctx.runtime.events.read(warn=lambda _m: None):
            user = record.get("user")
            if user not in users:
                continue
            moment = event_time(record)
            if moment >= since and (user not in latest or moment > latest[user]):
                latest[user] = moment
    except (OSError, ValueError) as exc:
        warnings.append(f"cannot read the audit log for last activity: {exc}")
    return {u: m.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") for u, m in latest.items()}


def users(ctx: ServiceContext) -> dict[str, Any]:
    """Every user ds01 knows: their group, a summary of their effective limits (and which are
    overridden now), their containers, the GPU slots they hold and their last activity."""
    ctx.require_admin()
    runtime = ctx.runtime
    warnings: list[str] = []
    workloads = _inventory(ctx, warnings)
    try:
        live = Allocations(runtime).live()
        overrides = active_overrides(runtime.state.db, runtime.now())
    except (OSError, sqlite3.Error) as exc:
        warnings.append(f"cannot read the state store: {exc}")
        live, overrides = [], []
    held: defaultdict[str, list[str]] = defaultdict(list)
    weight: defaultdict[str, float] = defaultdict(float)
    for allocation in live:
        held[allocation.user].extend(allocation.slot_uuids)
        weight[allocation.user] += allocation.weight
    names = _known_users(ctx, workloads, set(held) | {o.user for o in overrides})
    slot_ids = _slot_ids(ctx)
    activity = _last_activity(ctx, set(names), warnings)
    rows = []
    for name in names:
        resolved = effective_limits(runtime, name)
        mine = [w for w in _containers(workloads) if w.owner == name]
        rows.append(
            {
                "user": name,
                "group": resolved.group,
                "limits": {
                    key: resolved.values[key].value
                    for key in SUMMARY_KEYS
                    if key in resolved.values
                },
                "overridden": sorted(
                    key
                    for key, entry in resolved.values.items()
                    if entry.source.startswith("override")
                ),
                "containers": len(mine),
                "container_names": sorted(w.name for w in mine),
                "containers_running": sum(1 for w in mine if w.status == "running"),
                "gpu_slots": [slot_ids.get(u, u[:12]) for u in held.get(name, [])],
                "gpu_equivalents": round(weight.get(name, 0.0), 3),
                "last_activity": activity.get(name),
            }
        )
    return {"users": rows, "warnings": warnings}


def _slot_ids(ctx: ServiceContext) -> dict[str, str]:
    try:
        return {s.uuid: s.slot_id for s in ctx.runtime.gpu.slots()}
    except Exception:  # named by their UUIDs' start instead
        return {}


def health(ctx: ServiceContext) -> dict[str, Any]:
    """The admin panel's tiles: GPUs and slots in use of the total, GPU-equivalents
    allocated, containers running, users active, requests waiting, GPU health problems."""
    ctx.require_admin()
    # lazy: these modules import this one's siblings; kept out of the CLI's import time
    from ds01_core.services import gpu_health, gpus

    warnings: list[str] = []
    slots_total = slots_used = gpus_total = gpus_used = 0
    weight_total = weight_used = 0.0
    access: dict[str, Any] = {}
    try:
        status = gpus.status(ctx)
        access = status.get("access") or {}
        for gpu in status["gpus"]:
            gpus_total += 1
            held = [s for s in gpu["slots"] if s["allocation"] is not None]
            gpus_used += bool(held)
            slots_total += len(gpu["slots"])
            slots_used += len(held)
            weight_total += sum(s["weight"] for s in gpu["slots"])
            weight_used += sum(s["weight"] for s in held)
    except ServiceError as exc:
        warnings.append(f"cannot read the GPUs: {exc.message}")
    workloads = _inventory(ctx, warnings)
    running = [w for w in _containers(workloads) if w.status == "running"]
    try:
        live = Allocations(ctx.runtime).live()
        queued = waiting(ctx.runtime.state.db)
    except (OSError, sqlite3.Error) as exc:
        warnings.append(f"cannot read the state store: {exc}")
        live, queued = [], []
    active = {w.owner for w in running if w.owner and w.owner != "unknown"}
    active.update(a.user for a in live)
    problems: list[dict[str, Any]] = []
    stale = False
    try:
        report = gpu_health.health(ctx)
        stale = bool(report["stale"])
        problems = [g for g in report["gpus"] if g["state"] != "ok"]
    except ServiceError as exc:
        warnings.append(f"cannot read the GPU health table: {exc.message}")
    return {
        "gpus": {"total": gpus_total, "in_use": gpus_used},
        "slots": {"total": slots_total, "in_use": slots_used},
        "gpu_equivalents": {"total": round(weight_total, 3), "allocated": round(weight_used, 3)},
        "gpu_access": access.get("state") if isinstance(access, dict) else None,
        "containers": {"running": len(running), "total": len(_containers(workloads))},
        "users_active": len(active),
        "queue": len(queued),
        "gpu_health": {"problems": len(problems), "stale": stale, "gpus": problems},
        "warnings": warnings,
    }


OPERATIONS = (
    Operation(
        "admin.users",
        "GET",
        "/v1/admin/users",
        users,
        admin=True,
        summary="Every user ds01 knows: group, limits, containers, GPUs held, last activity.",
    ),
    Operation(
        "admin.health",
        "GET",
        "/v1/admin/health",
        health,
        admin=True,
        summary="GPUs and slots in use, containers, users active, queue, GPU health problems.",
    ),
)
