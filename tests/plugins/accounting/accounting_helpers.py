"""Shared pieces of the accounting tests: a clock the test moves, a small simulated host with
moving energy counters, a runtime on both, and allocations made and released the core's way."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import yaml

from ds01_core.cycle.pipeline import with_measured_utilization
from ds01_core.cycle.steps import CycleReport
from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.model import Gpu, GpuSlot, Workload
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.runtime import Runtime, load_runtime
from tests.helpers.config import write_config

#: a Monday, safely in the past
T0 = dt.datetime(2025, 3, 3, 9, 0, 0, tzinfo=dt.UTC)
#: plugins and detectors that would touch the host or Docker
QUIET = ["docker-detector", "gpu-process-detector", "cgroups", "diskquota", "ldap", "notify"]
WHOLE_WATTS = 200.0
MIG_WATTS = 350.0


class Clock:
    """``runtime.now`` and the simulated GPUs' monotonic clock, both moved by ``advance``."""

    def __init__(self, start: dt.datetime = T0):
        self.moment = start
        self.mono = 1000.0

    def __call__(self) -> dt.datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)
        self.mono += seconds


def topology() -> dict[str, Any]:
    """GPU 0 whole (50 % busy, 200 W); GPU 1 in MIG mode with GPM (3g at 80 %, 2g at 20 %, 2g
    at 0 %; 350 W); GPU 2 whole without an energy counter."""
    return {
        "name": "acct",
        "default_model": "NVIDIA A100-SXM4-80GB",
        "models": {
            "NVIDIA A100-SXM4-80GB": {
                "memory": "81920MiB",
                "profiles": {
                    "2g.20gb": {"id": 1, "slices": 2, "memory": "19968MiB"},
                    "3g.40gb": {"id": 2, "slices": 3, "memory": "40192MiB"},
                    "7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"},
                },
            }
        },
        "gpus": [
            {"utilization": 50, "power_watts": WHOLE_WATTS, "energy_joules": 1000.0},
            {
                "gpm": True,
                "power_watts": MIG_WATTS,
                "energy_joules": 5000.0,
                "mig": [
                    {"profile": "3g.40gb", "gi": 2, "sm_utilization": 80},
                    {"profile": "2g.20gb", "gi": 3, "sm_utilization": 20},
                    {"profile": "2g.20gb", "gi": 4, "sm_utilization": 0},
                ],
            },
            {"utilization": 10},
        ],
    }


def make_runtime(
    directory: Path, clock: Clock, extra: dict[str, Any] | None = None
) -> tuple[Runtime, SimulatedProvider]:
    """A runtime in ``directory`` on the simulated host above, its time from ``clock``."""
    path = directory / "topology.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(topology()))
    data: dict[str, Any] = {
        "gpu": {"backend": "simulated", "simulated": {"topology": str(path)}},
        "plugins": {"disabled": QUIET},
        **(extra or {}),
    }
    runtime = load_runtime(str(write_config(directory, data)))
    provider = SimulatedProvider(path, clock=clock.monotonic)
    runtime.use_gpu_provider(provider)
    runtime.now = clock  # type: ignore[method-assign]
    return runtime, provider


def slots(runtime: Runtime) -> dict[str, GpuSlot]:
    """The slots by id: ``0``, ``1.2``, ``1.3``, ``1.4``, ``2``."""
    return {slot.slot_id: slot for slot in runtime.gpu.slots()}


def allocate(runtime: Runtime, user: str, container: str, *slot_ids: str) -> int:
    """A bound allocation of ``slot_ids`` for ``container`` of ``user``, made now."""
    chosen = [slots(runtime)[s] for s in slot_ids]
    with runtime.state.transaction() as db:
        return Allocations.insert_bound(
            db,
            user,
            f"{container}-id",
            container,
            [s.uuid for s in chosen],
            sum(s.weight for s in chosen),
            runtime.now(),
        )


def release(runtime: Runtime, allocation_id: int) -> None:
    Allocations(runtime).release([allocation_id], "container removed")


def measured(runtime: Runtime) -> list[Gpu]:
    """The GPUs as a cycle's report has them: MIG slots with GPM's utilisation (read once a
    cycle by the idle step, added to the report by the pipeline)."""
    gpm = runtime.gpu.mig_utilization()  # type: ignore[attr-defined]
    gpus = runtime.gpu.gpus()
    read = {
        s.uuid: attrs.evolve(s, utilization=gpm[s.uuid])
        for g in gpus
        for s in g.slots
        if gpm.get(s.uuid) is not None
    }
    return with_measured_utilization(gpus, read)


def report(runtime: Runtime, *, partial: bool = False, idle: tuple[str, ...] = ()) -> CycleReport:
    """What a cycle hands ``cycle_finished``: the GPUs read now (none in a partial cycle) and a
    workload per container named in ``idle`` in an idle streak."""
    gpus: list[Gpu] = [] if partial else measured(runtime)
    workloads = [
        Workload(
            kind="container",
            id=f"{name}-id",
            name=name,
            origin="ds01",
            owner="ds01ta",
            owner_source="label",
            status="running",
            idle_seconds=120.0,
        )
        for name in idle
    ]
    return CycleReport(workloads=workloads, partial=partial, started_at=runtime.now(), gpus=gpus)
