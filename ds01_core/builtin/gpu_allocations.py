"""Built-in: keeps GPU allocation records true to Docker every cycle, and the owner map.

Releases what is gone or held past ``allocation.gpu_hold_after_stop``, adopts containers that
hold GPUs without a record, and rewrites the GPU → owner files for dcgm-exporter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.allocation import Allocations, inventory_slots
from ds01_core.hookspecs import hookimpl
from ds01_core.model import Event, Workload
from ds01_core.owner_map import write_owner_map

if TYPE_CHECKING:
    from ds01_core.runtime import Runtime

log = logging.getLogger(__name__)


@hookimpl
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> list[Event]:
    allocations = Allocations(runtime)
    events = allocations.reconcile(workloads)
    try:
        write_owner_map(
            runtime.config.allocation_owner_map_dir, inventory_slots(runtime), allocations.live()
        )
    except OSError as exc:
        log.error("cannot write the GPU owner map: %s", exc)
    return events
