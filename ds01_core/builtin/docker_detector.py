"""Built-in detector: every Docker container, whatever client made it, as a workload."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.detection.docker_inventory import ContainerDetector
from ds01_core.hookspecs import hookimpl
from ds01_core.model import Workload

if TYPE_CHECKING:
    from ds01_core.runtime import Runtime

MEMO_KEY = "docker-detector"


def detector(runtime: Runtime) -> ContainerDetector:
    """This runtime's detector (and its per-container cache)."""
    return runtime.memo(
        MEMO_KEY, lambda: ContainerDetector(home_roots=runtime.config.detection.home_roots)
    )


@hookimpl
def detect_workloads(runtime: Runtime) -> list[Workload]:
    return detector(runtime).detect(runtime.docker, runtime.gpu.slots())
