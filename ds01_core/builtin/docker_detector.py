"""Built-in detector: every Docker container, whatever client made it, as a workload.

What it learns about each container goes into the core's cache
(:func:`ds01_core.cycle.detection.shared.docker_containers`), where the GPU process detector
and the daemon read owners without depending on this plugin.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ds01_core.cycle.detection.shared import docker_containers
from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.model import GpuSlot, Workload
from ds01_core.framework.hookspecs import hookimpl

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

SLOTS_KEY = "docker-detector-slots"


def current_slots(runtime: Runtime) -> list[GpuSlot]:
    """The GPU slots now, or the last ones read when the GPU provider fails (an NVML error
    must not hide containers)."""
    last: dict[str, list[GpuSlot]] = runtime.memo(SLOTS_KEY, lambda: {"slots": []})
    try:
        last["slots"] = runtime.gpu.slots()
    except GpuUnavailableError as exc:  # an outage the GPU access reports once, not per cycle
        log.debug("GPUs unavailable, using the last inventory read: %s", exc)
    except Exception as exc:
        log.error("GPU inventory unavailable, using the last one read: %s", exc)
    return last["slots"]


@hookimpl
def detect_workloads(runtime: Runtime) -> list[Workload]:
    return docker_containers(runtime).detect(runtime.docker, current_slots(runtime))
