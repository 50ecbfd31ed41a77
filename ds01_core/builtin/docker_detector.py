"""Built-in detector: every Docker container, whatever client made it, as a workload."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ds01_core.cycle.detection.docker_inventory import ContainerDetector
from ds01_core.domain.model import GpuSlot, Workload
from ds01_core.framework.hookspecs import hookimpl

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

MEMO_KEY = "docker-detector"


def detector(runtime: Runtime) -> ContainerDetector:
    """This runtime's detector (and its per-container cache)."""
    return runtime.memo(
        MEMO_KEY, lambda: ContainerDetector(home_roots=runtime.config.detection.home_roots)
    )


def current_slots(runtime: Runtime) -> list[GpuSlot]:
    """The GPU slots now, or the last ones read when the GPU provider fails (an NVML error
    must not hide containers)."""
    last: dict[str, list[GpuSlot]] = runtime.memo("docker-detector-slots", lambda: {"slots": []})
    try:
        last["slots"] = runtime.gpu.slots()
    except Exception as exc:
        log.error("GPU inventory unavailable, using the last one read: %s", exc)
    return last["slots"]


@hookimpl
def detect_workloads(runtime: Runtime) -> list[Workload]:
    return detector(runtime).detect(runtime.docker, current_slots(runtime))
