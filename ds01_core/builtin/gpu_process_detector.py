"""Built-in detector: processes the GPU driver reports, attributed through ``/proc``.

A process inside a container is attributed to that container's owner through the core's
cache of Docker containers (:mod:`ds01_core.cycle.detection.shared`); with the docker
detector disabled the cache stays empty and such processes keep the owner ``/proc`` gives.

What the driver could not read is unknown, not "gone": a slot whose process query failed keeps
the processes last read on it (:class:`LastKnown`), for as long as each is still the same
process (same PID and start time); a live listing (``ds01 workloads``) has no history and shows
only what it read. While the GPUs are unavailable (NVML does not answer, or an admin released
them) the detector reports no GPU processes and logs that once per outage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ds01_core.cycle.detection.host_processes import ProcessDetector
from ds01_core.cycle.detection.shared import docker_containers, is_single_look
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import ProcessListing, process_listing
from ds01_core.domain.model import GpuProcess, Workload
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

MEMO_KEY = "gpu-process-detector"
LAST_KNOWN_KEY = "gpu-process-detector-last-known"


@attrs.define
class LastKnown:
    """The GPU processes last read per slot, standing in for a slot that could not be read.

    :ivar slots: slot UUID -> the processes last read on it.
    :ivar unavailable: the GPUs were unavailable at the last look (logged once per outage).
    """

    slots: dict[str, tuple[GpuProcess, ...]] = attrs.Factory(dict)
    unavailable: bool = False

    def merge(self, listing: ProcessListing) -> list[GpuProcess]:
        """The processes read now, plus those last read on the slots not read now."""
        fresh: dict[str, list[GpuProcess]] = {}
        for proc in listing.processes:
            fresh.setdefault(proc.slot_uuid, []).append(proc)
        if listing.read is None:  # every slot was read
            self.slots = {uuid: tuple(procs) for uuid, procs in fresh.items()}
        else:
            kept = {u: p for u, p in self.slots.items() if u not in listing.read}
            for uuid in kept:
                log.debug("GPU processes on %s unknown: keeping the last read", uuid)
            self.slots = kept | {u: tuple(fresh.get(u, ())) for u in listing.read}
        return [proc for procs in self.slots.values() for proc in procs]

    def keep_only(self, alive: Iterable[int]) -> None:
        """Forget the processes no longer seen as the same process (ended, or a reused PID)."""
        pids = set(alive)
        self.slots = {
            uuid: kept
            for uuid, procs in self.slots.items()
            if (kept := tuple(p for p in procs if p.pid in pids))
        }


def detector(runtime: Runtime) -> ProcessDetector:
    """The daemon's detector, which remembers sightings to confirm a process across cycles."""
    return runtime.memo(
        MEMO_KEY,
        lambda: ProcessDetector(
            confirm_cycles=runtime.config.detection.process_confirm_cycles,
            ignored_names=runtime.config.gpu.ignored_process_names,
        ),
    )


@hookimpl
def detect_workloads(runtime: Runtime) -> list[Workload]:
    last: LastKnown = runtime.memo(LAST_KNOWN_KEY, LastKnown)
    try:
        listing = process_listing(runtime.gpu)
    except GpuUnavailableError as exc:
        if not last.unavailable:
            log.warning("GPU processes not detected while the GPUs are unavailable: %s", exc)
            last.unavailable = True
        return []
    if last.unavailable:
        log.info("GPU processes detected again: the GPUs are available")
        last.unavailable = False
    owner_of = docker_containers(runtime).owner_of
    if is_single_look():  # a live listing: what is there now, no history kept
        chosen = ProcessDetector(
            confirm_cycles=1, ignored_names=runtime.config.gpu.ignored_process_names
        )
        return chosen.detect(listing.processes, owner_of)
    chosen = detector(runtime)
    before = {pid: seen.start_ticks for pid, seen in chosen.sightings.items()}
    found = chosen.detect(last.merge(listing), owner_of)
    # a kept process lives on only while it runs and is the one seen before (not a reused PID)
    last.keep_only(
        pid
        for pid, seen in chosen.sightings.items()
        if before.get(pid, seen.start_ticks) == seen.start_ticks
    )
    return found
