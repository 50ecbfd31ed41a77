"""What detectors share within one runtime, owned by the core: the Docker containers last seen.

Built-in plugins do not read each other's state. The docker detector fills this cache, the GPU
process detector attributes processes in containers through it, and the daemon reads owners
from it and drops what Docker says has changed; each works (with less to go on) when another
is disabled. Whether a detection is a single look (a live listing, not a daemon cycle) is
said here too, per thread, so a concurrent cycle or listing is not affected.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ds01_core.cycle.detection.docker_inventory import ContainerDetector

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

_CONTAINERS_KEY = "core.docker-containers"
_SINGLE_LOOK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ds01_single_look", default=False
)


def docker_containers(runtime: Runtime) -> ContainerDetector:
    """The containers Docker had at the last detection (empty until one ran), with the
    per-container cache that spares re-inspecting unchanged containers."""
    return runtime.memo(
        _CONTAINERS_KEY,
        lambda: ContainerDetector(home_roots=runtime.config.detection.home_roots),
    )


def forget_containers(runtime: Runtime, container_ids: Iterable[str]) -> None:
    """Drop what is cached about these containers (Docker reported a change), so the next
    detection inspects them again; the id ``""`` drops everything (after an engine outage)."""
    containers = docker_containers(runtime)
    for container_id in container_ids:
        if container_id == "":
            containers.records.clear()
            return
        containers.invalidate(container_id)


@contextlib.contextmanager
def single_look() -> Iterator[None]:
    """Detection inside this block is a single look: a live listing reports what it sees now,
    without the confirmation across daemon cycles asked of host GPU processes."""
    token = _SINGLE_LOOK.set(True)
    try:
        yield
    finally:
        _SINGLE_LOOK.reset(token)


def is_single_look() -> bool:
    return _SINGLE_LOOK.get()
