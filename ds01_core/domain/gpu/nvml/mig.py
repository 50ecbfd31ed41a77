"""MIG enumeration through NVML: a GPU's mode, its slice count, and its MIG devices.

Enumerated on every listing, since an admin may repartition a GPU while ds01 runs; only the
GPU's total slice count (a property of the model) is cached. A MIG device that cannot be read
is logged and left out; a lost GPU raises, so the session leaves the whole GPU out.

A MIG device is a compute instance: a GPU instance split into several gives several devices,
each weighed by its own compute slices and given its share of the GPU instance's memory. Each
keeps the MIG index NVML enumerated it at, holes included.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from ds01_core.domain.gpu.nvml.session import NvmlSession
from ds01_core.domain.gpu.nvml.slots import (
    MIB,
    MigDevice,
    composed_profile,
    gi_slices,
    mig_slices,
    mig_slot,
    profile_from_name,
    share_instance_memory,
    slices_in_use,
    text,
)
from ds01_core.domain.model import Gpu

log = logging.getLogger(__name__)


class MigReader:
    """The MIG side of the GPUs of one NVML session."""

    def __init__(self, session: NvmlSession):
        self._session = session
        self._nvml = session.nvml
        self._slices: dict[int, int | None] = {}  # None: no MIG profiles (not asked again)
        #: GPU index -> the MIG device that could not be listed in its last enumeration
        self.unlisted: dict[int, str] = {}
        self._said_no_profiles: set[int] = set()  # warned once per GPU per session

    def enabled(self, handle: Any) -> bool:
        mode = self._session.metric("MIG mode", self._nvml.nvmlDeviceGetMigMode, handle)
        return mode is not None and mode[0] == self._nvml.NVML_DEVICE_MIG_ENABLE

    def total_slices(self, index: int, handle: Any) -> int | None:
        """The most slices any GPU-instance profile takes: the GPU's slice count (7 on A100,
        4 on A30), as NVML reports it. None for GPUs without MIG profiles."""
        if index in self._slices:
            return self._slices[index]
        nv = self._nvml
        counts = []
        for profile_id in range(nv.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = nv.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile_id)
            except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                continue  # a profile this GPU does not offer: expected, not worth a log line
            except nv.NVMLError as exc:
                if isinstance(exc, nv.NVMLError_GpuIsLost):
                    raise
                log.debug("GPU %d: MIG profile %d unavailable: %s", index, profile_id, exc)
                continue
            if info.sliceCount > 0:
                counts.append(int(info.sliceCount))
        self._slices[index] = max(counts) if counts else None
        return self._slices[index]

    def with_slots(self, gpu: Gpu, handle: Any) -> Gpu:
        devices = self.devices(gpu.index, handle)
        total = self.total_slices(gpu.index, handle)
        if total is None:
            total = slices_in_use(devices)
            level = logging.DEBUG if gpu.index in self._said_no_profiles else logging.WARNING
            self._said_no_profiles.add(gpu.index)
            log.log(
                level,
                "GPU %d: NVML gives no MIG profile info; weighing its instances over the %d "
                "slices in use",
                gpu.index,
                total,
            )
        slots = tuple(mig_slot(gpu, dev, total) for dev in share_instance_memory(devices))
        return attrs.evolve(gpu, total_slices=total, slots=slots)

    def handles(self, index: int, handle: Any) -> list[Any]:
        return [mig for _mig_index, mig in self.indexed_handles(index, handle)]

    def indexed_handles(self, index: int, handle: Any) -> list[tuple[int, Any]]:
        """``(MIG index, handle)`` of each MIG device. The index is NVML's, the one ``G:M`` in
        ``NVIDIA_VISIBLE_DEVICES`` names; it can have holes, so it is kept, not recounted."""
        nv = self._nvml
        found = []
        self.unlisted.pop(index, None)
        for mig_index in range(int(nv.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                found.append((mig_index, nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)))
            except (nv.NVMLError_NotFound, nv.NVMLError_InvalidArgument) as exc:
                log.debug("GPU %d: no MIG device at index %d (%s)", index, mig_index, exc)
                continue  # an empty index: expected, not worth a warning
            except nv.NVMLError as exc:
                if isinstance(exc, nv.NVMLError_GpuIsLost):
                    raise
                log.warning("GPU %d: MIG device %d could not be read (%s)", index, mig_index, exc)
                self.unlisted[index] = f"nvmlDeviceGetMigDeviceHandleByIndex({mig_index}): {exc}"
        return found

    def devices(self, index: int, handle: Any) -> list[MigDevice]:
        devices = []
        for mig_index, mig in self.indexed_handles(index, handle):
            try:
                device = self._device(mig, mig_index)
            except self._nvml.NVMLError as exc:
                if isinstance(exc, self._nvml.NVMLError_GpuIsLost):
                    raise
                log.warning("GPU %d: a MIG device could not be read (%s): left out", index, exc)
                continue
            if device is None:
                log.warning("GPU %d: a MIG device reports no slice count: left out", index)
                continue
            devices.append(device)
        return sorted(devices, key=lambda d: (d.gpu_instance_id, d.compute_instance_id))

    def _device(self, mig: Any, mig_index: int | None = None) -> MigDevice | None:
        nv = self._nvml
        name = text(nv.nvmlDeviceGetName(mig))
        attributes = self._session.metric("MIG attributes", nv.nvmlDeviceGetAttributes, mig)
        memory = self._session.memory(mig)  # v2 where the driver has it, as for whole GPUs
        memory_mib = int(attributes.memorySizeMB) if attributes is not None else 0
        memory_total = int(memory.total) if memory is not None else memory_mib * MIB
        profile = profile_from_name(name)
        slices = mig_slices(attributes, profile)
        if slices is None:
            return None
        instance_slices = gi_slices(attributes, profile)
        return MigDevice(
            uuid=text(nv.nvmlDeviceGetUUID(mig)),
            profile=profile or composed_profile(slices, memory_total // MIB, instance_slices),
            slices=slices,
            gpu_instance_id=int(nv.nvmlDeviceGetGpuInstanceId(mig)),
            compute_instance_id=int(nv.nvmlDeviceGetComputeInstanceId(mig)),
            memory_total=memory_total,
            memory_used=int(memory.used) if memory is not None else 0,
            gi_slices=instance_slices,
            mig_index=mig_index,
        )
