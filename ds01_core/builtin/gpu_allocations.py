"""Built-in: keeps GPU allocation records true to Docker every cycle, and the owner map.

Two steps of the daemon's cycle (``cycle_steps``): ``reconcile-allocations`` releases what is gone or held past ``allocation.gpu_hold_after_stop``, adopts containers that
hold GPUs without a record, and rewrites the GPU → owner files for dcgm-exporter. A running
container that reaches a slot allocated to another container (``gpu.conflict``: started behind
ds01's back, e.g. by the engine's restart policy or an admin) is stopped when
``allocation.foreign_slot_action`` is ``stop`` (the default) — with a ``gpu.foreign_slot_stopped``
event and a notice to its owner — or only logged with ``log``. ``owner-map`` then rewrites the
GPU → owner files from the records. Both also run in the partial cycle after a Docker event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.cycle.allocation_reconcile import CONFLICT_EVENT, reconcile_allocations
from ds01_core.cycle.notices import tell_user
from ds01_core.cycle.owner_map import write_owner_map
from ds01_core.cycle.steps import CycleStep
from ds01_core.domain.docker_engine import DockerError
from ds01_core.domain.model import Event, Notice, Workload
from ds01_core.domain.state.allocations import Allocations, inventory_slots
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

STOPPED_EVENT = "gpu.foreign_slot_stopped"


@hookimpl
def cycle_steps() -> list[CycleStep]:
    return [
        CycleStep(
            "reconcile-allocations",
            lambda ctx: reconcile_and_police(ctx.runtime, ctx.workloads),
            "GPU allocations released, adopted, or a container on another's GPU stopped",
            before="reconcile",
            partial=True,
        ),
        CycleStep(
            "owner-map",
            lambda ctx: write_owners(ctx.runtime),
            "the GPU → owner files for dcgm-exporter rewritten from the allocations",
            before="reconcile",
            needs=("detect", "reconcile-allocations"),
            partial=True,
        ),
    ]


def reconcile_and_police(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    """Allocation records brought in line with ``workloads``; foreign slot users stopped."""
    events = reconcile_allocations(Allocations(runtime), workloads)
    if runtime.config.allocation.foreign_slot_action == "stop":
        events += [
            stopped
            for event in events
            if event.event_type == CONFLICT_EVENT
            for stopped in [stop_foreign(runtime, event)]
            if stopped is not None
        ]
    return events


def write_owners(runtime: Runtime) -> None:
    """Rewrite the owner map; a write that fails is logged and tried again next cycle."""
    try:
        write_owner_map(
            runtime.config.allocation_owner_map_dir,
            inventory_slots(runtime),
            Allocations(runtime).live(),
        )
    except OSError as exc:
        log.error("cannot write the GPU owner map: %s", exc)


def stop_foreign(runtime: Runtime, conflict: Event) -> Event | None:
    """Stop the container a ``gpu.conflict`` names and tell its owner; the audit event, or
    None when it could not be stopped (logged; the next cycle tries again)."""
    details = conflict.details
    name = str(details.get("container"))
    grace = int(float(runtime.config.allocation.stop_timeout))
    try:
        runtime.docker.stop(str(details["container_id"]), timeout=grace)
    except DockerError as exc:
        log.error("could not stop %s, which runs on another's GPU slot: %s", name, exc)
        return None
    if conflict.user:
        tell_user(
            runtime,
            Notice(
                conflict.user,
                f"{name} stopped",
                f"Your container {name} was stopped: it was running on a GPU that ds01 has "
                "allocated to another container, without an allocation of its own. Start it "
                "again when that GPU is free (the start takes it back), or remove it and create "
                "a new container, which gets whichever GPU is free.",
                "action",
                name,
                STOPPED_EVENT,
            ),
        )
    return Event(
        STOPPED_EVENT,
        conflict.user,
        "allocation",
        {**details, "action": "stop", "grace_seconds": grace},
    )
