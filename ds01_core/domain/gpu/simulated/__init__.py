"""The simulated provider: a GPU host described in YAML, read through the NVML provider.

So that every feature of ds01 can be run and tested without a GPU, a topology file (by default
the embedded ``dgx_a100.yaml``) describes GPUs, MIG instances, memory, utilisation and
processes; :class:`~ds01_core.domain.gpu.simulated.nvml.SimulatedNvml` answers NVML calls from it, and the
ordinary :class:`~ds01_core.domain.gpu.nvml.NvmlProvider` code reads it.

A *processes file* (YAML or JSON list of ``{pid, slot, used_memory}``) is re-read on every query,
so tests and demos can make real host PIDs appear as GPU processes while ds01 runs. A *faults
file* (:mod:`~ds01_core.domain.gpu.simulated.faults_file`) makes GPUs hot, throttled, lost or
report memory errors and XIDs, re-read when it changes; unit tests set ``nvml.faults.health``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simulated.faults_file import FaultsFile
from ds01_core.domain.gpu.simulated.host import SimProcess
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.gpu.simulated.processes import ProcessesFile
from ds01_core.domain.gpu.simulated.topology import (
    SimulatedTopologyError,
    build_host,
    load_topology,
)

__all__ = [
    "FaultsFile",
    "ProcessesFile",
    "SimulatedNvml",
    "SimulatedProvider",
    "SimulatedTopologyError",
    "build_host",
    "load_topology",
]


class SimulatedProvider(NvmlProvider):
    """The NVML provider over a simulated host; ``name`` is ``"simulated"``.

    :param reason: why the simulated host is in use, for ``description`` (``auto: …``).
    """

    def __init__(
        self,
        topology_path: str | Path | None = None,
        processes_file: str | Path | None = None,
        *,
        reason: str | None = None,
        clock: Callable[[], float] | None = None,
        faults_file: str | Path | None = None,
    ):
        self.host = load_topology(topology_path)
        extra: Callable[[], Iterable[tuple[str, SimProcess]]] | None = None
        if processes_file is not None:
            extra = ProcessesFile(processes_file, self.host)
        self.faults_file = (
            FaultsFile(faults_file, len(self.host.gpus)) if faults_file is not None else None
        )
        kwargs: dict[str, Any] = {"extra_processes": extra}
        if self.faults_file is not None:
            kwargs["faults_source"] = self.faults_file.poll
        if clock is not None:
            kwargs["clock"] = clock
        self.nvml = SimulatedNvml(self.host, **kwargs)
        what = f"{self.host.name} topology from {self.host.source}"
        description = f"simulated host ({reason}; {what})" if reason else f"simulated host ({what})"
        super().__init__(self.nvml, name="simulated", description=description)
