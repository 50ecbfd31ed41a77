"""GPU-health test helpers: a provider that reads telemetry on the simulated host, runtimes
with the built-in plugins but no detectors (nothing looks at Docker), and the faults file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynvml
import yaml

from ds01_core.domain.config import build_config
from ds01_core.domain.gpu.health import GpuTelemetry
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.state import gpu_health as table
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime


class TelemetryHost(SimulatedProvider):
    """The simulated host as a provider that reads telemetry: ``faults`` (GPU index -> readings)
    over cool, healthy defaults; ``broken`` makes the next read fail; counts listings."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[int, dict[str, Any]] = {}
        self.broken = False
        self.listings = 0

    def gpus(self):
        self.listings += 1
        return super().gpus()

    def telemetry(self) -> list[GpuTelemetry]:
        self.listed_before_telemetry = self.listings  # the step lists, then reads telemetry
        if self.broken:
            self.broken = False
            raise pynvml.NVMLError_Unknown()
        return [
            GpuTelemetry(
                index,
                uuid,
                **{
                    "temperature_c": 41.0,
                    "slowdown_temperature_c": 87.0,
                    **self.faults.get(index, {}),
                },
            )
            for index, uuid in enumerate(g.uuid for g in self.host.gpus)
        ]


def base(tmp_path: Path) -> dict[str, Any]:
    return {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
    }


@contextlib.contextmanager
def runtime_maker(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """``make(provider=None, *plugins, extra=None)``: a runtime on ``tmp_path``, closed at the end."""
    made: list[Runtime] = []

    def make(
        provider: Any = None, *plugins: tuple[str, object], extra: dict | None = None
    ) -> Runtime:
        host = make_plugin_host(
            extra=plugins,
            disabled=["docker-detector", "gpu-process-detector"],
            load_entry_points=False,
        )
        data = {**base(tmp_path), **(extra or {})}
        runtime = Runtime(build_config(data, sections=host.config_sections()), host)
        if provider is not None:
            runtime.use_gpu_provider(provider)
        made.append(runtime)
        return runtime

    try:
        yield make
    finally:
        for runtime in made:
            runtime.close()


def gpu_events(runtime: Runtime) -> list[dict[str, Any]]:
    return [e for e in runtime.events.read() if e["event_type"].startswith("gpu.")]


def stored(runtime: Runtime) -> dict[int, table.Stored]:
    return table.load(runtime.state.db)


def health_changes(runtime: Runtime) -> list[dict[str, Any]]:
    """The ``gpu.health_changed`` events' details, in order."""
    return [e["details"] for e in runtime.events.read() if e["event_type"] == "gpu.health_changed"]


def inject(path: Path, gpus: dict[int, dict[str, Any]]) -> None:
    """Write the faults file (``gpu.simulated.faults_file``) atomically (a new inode: the
    provider sees every change)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"gpus": gpus}))
    os.replace(tmp, path)
