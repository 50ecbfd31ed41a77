"""The simulated machine: its GPUs, MIG instances and processes, as plain records.

Built from a topology file by :mod:`~ds01_core.domain.gpu.simulated.topology`; answered through
NVML's API by :class:`~ds01_core.domain.gpu.simulated.nvml.SimulatedNvml`.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class SimProfile:
    """A GPU-instance profile the GPU model supports (``2g.20gb`` is NVML profile id 1)."""

    id: int
    name: str
    slices: int
    memory: int


@attrs.frozen
class SimProcess:
    """A compute process on one leaf device; ``used_memory`` in bytes, None when unknown."""

    pid: int
    used_memory: int | None = None


@attrs.define
class SimInstance:
    """One MIG device: a GPU instance with its (single) compute instance."""

    uuid: str
    profile: SimProfile
    gpu_instance_id: int
    compute_instance_id: int = 0
    memory_used: int = 0
    processes: list[SimProcess] = attrs.Factory(list)
    sm_utilization: float | None = None


@attrs.define
class SimGpu:
    """One physical GPU. ``instances`` is None when MIG is off, a list (maybe empty) when on."""

    index: int
    uuid: str
    model: str
    memory_total: int
    profiles: tuple[SimProfile, ...] = ()
    memory_used: int = 0
    utilization: int | None = None
    memory_utilization: int | None = None
    power_watts: float | None = None
    energy_joules: float | None = None
    instances: list[SimInstance] | None = None
    processes: list[SimProcess] = attrs.Factory(list)
    gpm_supported: bool = False

    @property
    def mig_capable(self) -> bool:
        return bool(self.profiles)

    @property
    def mig_enabled(self) -> bool:
        return self.instances is not None

    @property
    def total_slices(self) -> int:
        return max((p.slices for p in self.profiles), default=1)


@attrs.define
class SimHost:
    """A whole simulated machine: its GPUs, driver version, and where it was described."""

    name: str
    driver_version: str
    gpus: list[SimGpu]
    source: str = "<memory>"

    def leaf_uuids(self) -> list[str]:
        """UUIDs of every leaf device: whole GPUs without MIG, MIG instances of the others."""
        leaves: list[str] = []
        for gpu in self.gpus:
            if gpu.instances is None:
                leaves.append(gpu.uuid)
            else:
                leaves += [inst.uuid for inst in gpu.instances]
        return leaves

    def find_leaf(self, ref: str) -> str | None:
        """The UUID of the leaf that ``ref`` names (UUID, legacy MIG UUID, or slot id ``5.1``)."""
        for gpu in self.gpus:
            if gpu.instances is None:
                if ref in (gpu.uuid, str(gpu.index)):
                    return gpu.uuid
                continue
            for inst in gpu.instances:
                legacy = f"MIG-{gpu.uuid}/{inst.gpu_instance_id}/{inst.compute_instance_id}"
                if ref in (inst.uuid, legacy, f"{gpu.index}.{inst.gpu_instance_id}"):
                    return inst.uuid
        return None
