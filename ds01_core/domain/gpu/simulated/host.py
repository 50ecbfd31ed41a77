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
    """One MIG device: a compute instance of a GPU instance (often its only one).

    Several compute instances of one GPU instance are several records with the same
    ``gpu_instance_id`` and ``profile`` (the GPU instance's): NVML reports the GPU instance's
    memory on each (their ``memory_used`` add up to it), and GPM samples the GPU instance.
    ``compute_slices`` is the compute instance's share (None: all of the GPU instance's).
    ``mig_index`` is where ``nvmlDeviceGetMigDeviceHandleByIndex`` finds it (None: its place
    in the GPU's list); real drivers leave holes.
    """

    uuid: str
    profile: SimProfile
    gpu_instance_id: int
    compute_instance_id: int = 0
    memory_used: int = 0
    processes: list[SimProcess] = attrs.Factory(list)
    sm_utilization: float | None = None
    compute_slices: int | None = None
    mig_index: int | None = None

    @property
    def ci_slices(self) -> int:
        return self.compute_slices if self.compute_slices is not None else self.profile.slices

    @property
    def device_profile(self) -> str:
        """The profile in NVML's device name: ``3g.40gb``, or ``1c.3g.40gb`` for a compute
        instance smaller than its GPU instance."""
        if self.ci_slices == self.profile.slices:
            return self.profile.name
        return f"{self.ci_slices}c.{self.profile.name}"

    def slot_id(self, gpu_index: int) -> str:
        """ds01's slot id for it (``4.2``, or ``4.2.1`` for compute instance 1)."""
        if self.compute_instance_id:
            return f"{gpu_index}.{self.gpu_instance_id}.{self.compute_instance_id}"
        return f"{gpu_index}.{self.gpu_instance_id}"


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
    minor_number: int | None = None  # /dev/nvidia<minor>; None: the index

    @property
    def minor(self) -> int:
        return self.index if self.minor_number is None else self.minor_number

    def mig_position(self, mig_index: int) -> int | None:
        """The place in ``instances`` of the MIG device NVML enumerates at ``mig_index``."""
        for position, inst in enumerate(self.instances or []):
            given = position if inst.mig_index is None else inst.mig_index
            if given == mig_index:
                return position
        return None

    def instance_siblings(self, inst: SimInstance) -> list[SimInstance]:
        """The compute instances sharing ``inst``'s GPU instance (``inst`` among them)."""
        return [i for i in self.instances or [] if i.gpu_instance_id == inst.gpu_instance_id]

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
                if ref in (inst.uuid, legacy, inst.slot_id(gpu.index)):
                    return inst.uuid
        return None
