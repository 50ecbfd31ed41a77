"""Built-in detector: processes the GPU driver reports, attributed through ``/proc``.

A process inside a container is attributed to that container's owner through the core's
cache of Docker containers (:mod:`ds01_core.cycle.detection.shared`); with the docker
detector disabled the cache stays empty and such processes keep the owner ``/proc`` gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.cycle.detection.host_processes import ProcessDetector
from ds01_core.cycle.detection.shared import docker_containers, is_single_look
from ds01_core.domain.model import Workload
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

MEMO_KEY = "gpu-process-detector"


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
    if is_single_look():  # a live listing: what is there now, no history kept
        chosen = ProcessDetector(
            confirm_cycles=1, ignored_names=runtime.config.gpu.ignored_process_names
        )
    else:
        chosen = detector(runtime)
    return chosen.detect(runtime.gpu.processes(), docker_containers(runtime).owner_of)
