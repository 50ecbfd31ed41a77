"""Every GPU workload — containers of any origin and host processes — as the caller may see it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_core.cycle.detection.inventory import read_snapshot, workload_json
from ds01_core.domain.model import Workload
from ds01_core.domain.users import normalize_username
from ds01_core.services.errors import Invalid, Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext
from ds01_core.services.privacy import workload_view

ORIGINS = ("ds01", "devcontainer", "compose", "docker", "host", "unknown")


def _live(ctx: ServiceContext) -> tuple[list[Workload], list[str]]:
    """Detect now, in one look (GPU processes are reported at first sight, with no history)."""
    # lazy: the CLI imports this module (ORIGINS); the cycle brings the docker SDK, ~100 ms
    from ds01_core.cycle.pipeline import detect

    errors: list[str] = []
    return detect(ctx.runtime, errors, one_look=True), errors


def _provider_line(ctx: ServiceContext) -> str:
    try:
        provider = ctx.runtime.gpu
        slots = provider.slots()
    except Exception as exc:  # shown as text: the listing itself still works
        return f"unavailable ({exc})"
    gpus = len({s.gpu_index for s in slots})
    return f"{gpus} GPUs, {len(slots)} slots — {provider.description}"


def slot_names(ctx: ServiceContext) -> dict[str, str]:
    """Slot UUID → the name ``ds01 gpu status`` shows (``5.2``); empty when the GPUs cannot
    be read (listings then show the UUID's start)."""
    try:
        return {s.uuid: s.slot_id for s in ctx.runtime.gpu.slots()}
    except Exception:  # the GPU column falls back to UUIDs; the listing still works
        return {}


def with_slot_ids(view: dict[str, Any], slots: dict[str, str]) -> dict[str, Any]:
    """A workload's JSON form with ``gpu_slot_ids`` added, named by ``slots``."""
    return {**view, "gpu_slot_ids": [slots.get(u, u[:12]) for u in view["gpu_slots"]]}


def workloads(
    ctx: ServiceContext,
    user: str | None = None,
    gpu_only: bool = False,
    origin: list[str] | None = None,
    snapshot: bool = False,
) -> dict[str, Any]:
    """The inventory, live (or the daemon's last snapshot, for admins), filtered and with
    other users' workloads shown as ``privacy`` allows."""
    bad = [o for o in origin or [] if o not in ORIGINS]
    if bad:
        raise Invalid(f"unknown origin {', '.join(bad)}: choose from {', '.join(ORIGINS)}")
    taken_at: dt.datetime | None = None
    warnings: list[str] = []
    if snapshot:
        ctx.require_admin()
        path = ctx.runtime.config.paths.snapshot_path
        try:
            taken_at, items = read_snapshot(path)
        except FileNotFoundError:
            raise Unavailable(f"no inventory snapshot at {path}: is ds01d running?") from None
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"cannot read the inventory snapshot {path}: {exc}") from None
    else:
        items, warnings = _live(ctx)
    if user:
        items = [w for w in items if w.owner == normalize_username(user)]
    if gpu_only:
        items = [w for w in items if w.gpu_slots or w.unrestricted_gpu]
    if origin:
        items = [w for w in items if w.origin in origin]
    items.sort(key=lambda w: (w.owner, w.kind, w.name))
    slots = slot_names(ctx)
    views = [with_slot_ids(workload_view(ctx, workload_json(w)), slots) for w in items]
    return {
        "source": "snapshot" if taken_at else "live",
        "taken_at": taken_at,
        "gpus": _provider_line(ctx),
        "workloads": views,
        "warnings": warnings,
    }


OPERATIONS = (
    Operation(
        "workloads",
        "GET",
        "/v1/workloads",
        workloads,
        (
            Param("user"),
            Param("gpu_only", "bool", default=False),
            Param("origin", "list"),
            Param("snapshot", "bool", default=False),
        ),
        summary="Every GPU workload with its owner.",
    ),
)
