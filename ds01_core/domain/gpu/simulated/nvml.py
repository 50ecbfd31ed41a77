"""An in-memory GPU host that answers the subset of the ``pynvml`` API ds01 uses.

The simulated host sits *behind* the NVML interface rather than beside it, so the NVML provider
runs the same code on a laptop as on a DGX: same calls, same return shapes, and the real
``pynvml`` exception classes (``NVMLError_NotSupported`` on MIG utilisation, as real hardware
does). Tests inject further errors on top of it (``tests/helpers/fake_pynvml.py``).

Handles are opaque :class:`~ds01_core.domain.gpu.simulated.values.SimHandle` values, as NVML's are opaque pointers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import pynvml

from ds01_core.domain.gpu.simulated.faults import Faults, MemoryInfoV2
from ds01_core.domain.gpu.simulated.health_calls import FaultsSource, HealthCalls
from ds01_core.domain.gpu.simulated.host import SimGpu, SimHost, SimInstance, SimProcess
from ds01_core.domain.gpu.simulated.samples import UtilizationSamples
from ds01_core.domain.gpu.simulated.values import (
    NO_INSTANCE,
    DeviceAttributes,
    GpuInstanceProfileInfo,
    MemoryInfo,
    ProcessInfo,
    SimGpmMetricsGet,
    SimGpmSample,
    SimGpmSupport,
    SimHandle,
    Utilization,
)

MIB = 1024**2


ExtraProcesses = Callable[[], Iterable[tuple[str, SimProcess]]]


class SimulatedNvml(HealthCalls):
    """The ``pynvml`` functions ds01 calls, answered from a :class:`SimHost`.

    :param extra_processes: called on every process or memory query; yields ``(leaf uuid,
        process)`` pairs added to those the topology lists (a processes file, in practice).
    :param clock: seconds, monotonic; total energy grows at the current power draw.
    :param faults_source: gives new GPU faults when they changed (a faults file's ``poll``);
        the health calls are :class:`HealthCalls`'.
    """

    NVMLError = pynvml.NVMLError
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVMLError_InvalidArgument = pynvml.NVMLError_InvalidArgument
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVMLError_NotFound = pynvml.NVMLError_NotFound
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = pynvml.NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVMLError_Unknown = pynvml.NVMLError_Unknown
    NVMLLibraryMismatchError = pynvml.NVMLLibraryMismatchError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_GPU_INSTANCE_PROFILE_COUNT = pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT
    nvmlGpuInstanceProfileInfo_v2 = pynvml.nvmlGpuInstanceProfileInfo_v2
    NVML_GPM_METRICS_GET_VERSION = pynvml.NVML_GPM_METRICS_GET_VERSION
    NVML_GPM_METRIC_SM_UTIL = pynvml.NVML_GPM_METRIC_SM_UTIL
    c_nvmlGpmMetricsGet_t = SimGpmMetricsGet
    NVML_GPU_UTILIZATION_SAMPLES = pynvml.NVML_GPU_UTILIZATION_SAMPLES

    def __init__(
        self,
        host: SimHost,
        *,
        extra_processes: ExtraProcesses | None = None,
        clock: Callable[[], float] = time.monotonic,
        faults: Faults | None = None,
        faults_source: FaultsSource | None = None,
    ):
        self.host = host
        self.faults = faults if faults is not None else Faults()
        self._init_health(faults_source)
        self._extra_processes = extra_processes
        self._clock = clock
        self._started = clock()
        self._refcount = 0
        self.samples = UtilizationSamples()

    # -- session ----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        self._require_init()
        self._refcount -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._require_init()
        return self.host.driver_version

    # -- devices ----------------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.host.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimHandle:
        self._require_init()
        if not 0 <= index < len(self.host.gpus):
            raise self.NVMLError_InvalidArgument()
        self._check_lost(index)
        return SimHandle(index)

    def nvmlDeviceGetUUID(self, handle: SimHandle) -> str:
        gpu, inst = self._device(handle)
        return gpu.uuid if inst is None else inst.uuid

    def nvmlDeviceGetName(self, handle: SimHandle) -> str:
        gpu, inst = self._device(handle)
        return gpu.model if inst is None else f"{gpu.model} MIG {inst.device_profile}"

    def nvmlDeviceGetMemoryInfo(
        self, handle: SimHandle, version: int | None = None
    ) -> MemoryInfo | MemoryInfoV2:
        gpu, inst = self._device(handle)
        if version:
            self.faults.memory_v2()
        extra = self._extra_memory()
        if inst is not None:
            total = inst.profile.memory  # the GPU instance's, shared by its compute instances
            used = sum(i.memory_used + extra.get(i.uuid, 0) for i in gpu.instance_siblings(inst))
        elif gpu.instances is not None:
            total = gpu.memory_total
            used = sum(i.memory_used + extra.get(i.uuid, 0) for i in gpu.instances)
        else:
            total = gpu.memory_total
            used = gpu.memory_used + extra.get(gpu.uuid, 0)
        used = min(used, total)
        reserved = min(self.faults.reserved(handle), total - used)
        if version:
            free = total - used - reserved
            return MemoryInfoV2(version, total=total, reserved=reserved, free=free, used=used)
        # v1: what the driver reserves counts as used
        return MemoryInfo(total=total, free=total - used - reserved, used=used + reserved)

    def nvmlDeviceGetUtilizationRates(self, handle: SimHandle) -> Utilization:
        gpu = self._whole(handle)
        # Real hardware reports no utilisation for MIG devices, nor for a GPU in MIG mode.
        if gpu.mig_enabled or gpu.utilization is None:
            raise self.NVMLError_NotSupported()
        memory = gpu.memory_utilization
        if memory is None:
            memory = round(100 * gpu.memory_used / gpu.memory_total) if gpu.memory_total else 0
        return Utilization(gpu=gpu.utilization, memory=memory)

    def nvmlDeviceGetSamples(
        self, handle: SimHandle, sampling_type: int, timeStamp: int
    ) -> tuple[int, list[Any]]:
        gpu = self._whole(handle)
        util = None if gpu.mig_enabled else gpu.utilization
        now_us = round(self._clock() * 1e6)
        return self.samples.answer(handle.gpu, util, sampling_type, timeStamp, now_us)

    def nvmlDeviceGetPowerUsage(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        if gpu.power_watts is None:
            raise self.NVMLError_NotSupported()
        return round(gpu.power_watts * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        if gpu.energy_joules is None:
            raise self.NVMLError_NotSupported()
        elapsed = max(self._clock() - self._started, 0.0)
        return round((gpu.energy_joules + (gpu.power_watts or 0.0) * elapsed) * 1000)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: SimHandle) -> list[ProcessInfo]:
        self._device(handle)
        self.faults.process_query(handle, "nvmlDeviceGetComputeRunningProcesses")
        return self._compute_processes(handle)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: SimHandle) -> list[ProcessInfo]:
        self._device(handle)
        self.faults.process_query(handle, "nvmlDeviceGetComputeRunningProcesses_v2")
        return self._compute_processes(handle)

    def _compute_processes(self, handle: SimHandle) -> list[ProcessInfo]:
        gpu, inst = self._device(handle)
        extra = list(self._extras())
        if inst is not None:
            return self._process_infos(inst.uuid, inst.processes, extra, inst)
        if gpu.instances is None:
            return self._process_infos(gpu.uuid, gpu.processes, extra, None)
        # A GPU in MIG mode reports the processes of all its instances, tagged with their ids.
        infos: list[ProcessInfo] = []
        for each in gpu.instances:
            infos += self._process_infos(each.uuid, each.processes, extra, each)
        return infos

    # -- MIG --------------------------------------------------------------------------------

    # -- GPM (GPU performance monitoring; MIG utilisation where NVML has no other) ----------

    def nvmlGpmQueryDeviceSupport(self, handle: SimHandle) -> SimGpmSupport:
        gpu = self._whole(handle)
        return SimGpmSupport(isSupportedDevice=int(gpu.gpm_supported))

    def nvmlGpmSampleAlloc(self) -> SimGpmSample:
        return self.faults.gpm_alloc(SimGpmSample())

    def nvmlGpmSampleFree(self, sample: SimGpmSample) -> None:
        self.faults.gpm_free(sample)
        sample.gpu = None

    def nvmlGpmMigSampleGet(
        self, handle: SimHandle, gpu_instance_id: int, sample: SimGpmSample
    ) -> SimGpmSample:
        gpu = self._whole(handle)
        if not gpu.gpm_supported:
            raise pynvml.NVMLError_NotSupported()
        self.faults.gpm_get()
        instance = next(
            (i for i in gpu.instances or [] if i.gpu_instance_id == gpu_instance_id), None
        )
        if instance is None:
            raise pynvml.NVMLError_NotFound()
        now = self._clock() - self._started
        sample.gpu, sample.gpu_instance_id, sample.at = gpu.index, gpu_instance_id, now
        sample.busy = now * (instance.sm_utilization or 0.0) / 100.0
        return sample

    def nvmlGpmMetricsGet(self, metrics_get: SimGpmMetricsGet) -> SimGpmMetricsGet:
        first, second = metrics_get.sample1, metrics_get.sample2
        if first is None or second is None or first.gpu is None or second.gpu is None:
            raise pynvml.NVMLError_InvalidArgument()
        elapsed = second.at - first.at
        for metric in metrics_get.metrics[: metrics_get.numMetrics]:
            if metric.metricId != pynvml.NVML_GPM_METRIC_SM_UTIL or elapsed <= 0:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
                continue
            metric.value = 100.0 * (second.busy - first.busy) / elapsed
            metric.nvmlReturn = pynvml.NVML_SUCCESS
        return metrics_get

    def nvmlDeviceGetMigMode(self, handle: SimHandle) -> list[int]:
        gpu = self._whole(handle)
        if not gpu.mig_capable:
            raise self.NVMLError_NotSupported()
        mode = self.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else self.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        if not gpu.mig_capable:
            raise self.NVMLError_NotSupported()
        return gpu.total_slices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: SimHandle, index: int) -> SimHandle:
        gpu = self._whole(handle)
        if not gpu.mig_capable or not 0 <= index < gpu.total_slices:
            raise self.NVMLError_InvalidArgument()
        position = gpu.mig_position(index)  # MIG indexes can have holes
        if position is None:
            raise self.NVMLError_NotFound()
        return SimHandle(handle.gpu, position)

    def nvmlDeviceGetMinorNumber(self, handle: SimHandle) -> int:
        return self._whole(handle).minor  # /dev/nvidia<minor>: not necessarily the index

    def nvmlDeviceIsMigDeviceHandle(self, handle: SimHandle) -> int:
        self._device(handle)
        return int(handle.mig is not None)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: SimHandle) -> SimHandle:
        self._mig(handle)
        return SimHandle(handle.gpu)

    def nvmlDeviceGetGpuInstanceId(self, handle: SimHandle) -> int:
        return self._mig(handle).gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: SimHandle) -> int:
        return self._mig(handle).compute_instance_id

    def nvmlDeviceGetAttributes(self, handle: SimHandle) -> DeviceAttributes:
        _gpu, inst = self._device(handle)
        if inst is None:
            raise self.NVMLError_NotSupported()  # NVML: "only supports MIG device handles"
        slices = inst.profile.slices
        return DeviceAttributes(
            multiprocessorCount=0,
            sharedCopyEngineCount=0,
            sharedDecoderCount=0,
            sharedEncoderCount=0,
            sharedJpegCount=0,
            sharedOfaCount=0,
            gpuInstanceSliceCount=slices,
            computeInstanceSliceCount=inst.ci_slices,
            memorySizeMB=inst.profile.memory // MIB,
        )

    def nvmlDeviceGetGpuInstanceProfileInfo(
        self, handle: SimHandle, profile: int, version: int = 2
    ) -> GpuInstanceProfileInfo:
        gpu = self._whole(handle)
        self.faults.profile_info()
        if not 0 <= profile < self.NVML_GPU_INSTANCE_PROFILE_COUNT:
            raise self.NVMLError_InvalidArgument()
        found = next((p for p in gpu.profiles if p.id == profile), None)
        if found is None:
            raise self.NVMLError_NotSupported()
        return GpuInstanceProfileInfo(
            version=self.nvmlGpuInstanceProfileInfo_v2,
            id=found.id,
            isP2pSupported=0,
            sliceCount=found.slices,
            instanceCount=gpu.total_slices // found.slices,
            multiprocessorCount=0,
            memorySizeMB=found.memory // MIB,
            name=f"MIG {found.name}".encode(),
        )

    # -- internals ----------------------------------------------------------------------------

    def _require_init(self) -> None:
        if self._refcount <= 0:
            raise self.NVMLError_Uninitialized()

    def _device(self, handle: Any) -> tuple[SimGpu, SimInstance | None]:
        self._require_init()
        if not isinstance(handle, SimHandle) or not 0 <= handle.gpu < len(self.host.gpus):
            raise self.NVMLError_InvalidArgument()
        self._check_lost(handle.gpu)
        gpu = self.host.gpus[handle.gpu]
        if handle.mig is None:
            return gpu, None
        if gpu.instances is None or not 0 <= handle.mig < len(gpu.instances):
            raise self.NVMLError_InvalidArgument()
        return gpu, gpu.instances[handle.mig]

    def _whole(self, handle: Any) -> SimGpu:
        """The GPU behind a non-MIG handle; device-wide queries are not supported on MIG ones."""
        gpu, inst = self._device(handle)
        if inst is not None:
            raise self.NVMLError_NotSupported()
        return gpu

    def _mig(self, handle: Any) -> SimInstance:
        _gpu, inst = self._device(handle)
        if inst is None:
            raise self.NVMLError_InvalidArgument()
        return inst

    def _extras(self) -> Iterable[tuple[str, SimProcess]]:
        return self._extra_processes() if self._extra_processes is not None else ()

    def _extra_memory(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for uuid, proc in self._extras():
            used[uuid] = used.get(uuid, 0) + (proc.used_memory or 0)
        return used

    @staticmethod
    def _process_infos(
        uuid: str,
        listed: list[SimProcess],
        extra: list[tuple[str, SimProcess]],
        inst: SimInstance | None,
    ) -> list[ProcessInfo]:
        procs = list(listed) + [p for leaf, p in extra if leaf == uuid]
        gi = inst.gpu_instance_id if inst is not None else NO_INSTANCE
        ci = inst.compute_instance_id if inst is not None else NO_INSTANCE
        return [ProcessInfo(p.pid, p.used_memory, gi, ci) for p in procs]
