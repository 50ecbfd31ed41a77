"""Built-in detector: processes the GPU driver reports, attributed through ``/proc``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.builtin.docker_detector import MEMO_KEY as DOCKER_MEMO_KEY
from ds01_core.cycle.detection.host_processes import ProcessDetector
from ds01_core.domain.model import Workload
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def detector(runtime: Runtime) -> ProcessDetector:
    return runtime.memo(
        "gpu-process-detector",
        lambda: ProcessDetector(
            confirm_cycles=runtime.config.detection.process_confirm_cycles,
            ignored_names=runtime.config.gpu.ignored_process_names,
        ),
    )


@hookimpl
def detect_workloads(runtime: Runtime) -> list[Workload]:
    containers = runtime.memoized(DOCKER_MEMO_KEY)

    def container_owner(container_id: str) -> tuple[str, str, str] | None:
        return containers.owner_of(container_id) if containers is not None else None

    return detector(runtime).detect(runtime.gpu.processes(), container_owner)
