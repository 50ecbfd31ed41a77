"""NVML-shaped return values of the simulated host: the fields pynvml's structures have.

The simulated host answers with these so that the NVML provider reads the same attribute names
(NVML's own, hence the camelCase) on a laptop as on a real GPU.
"""

from __future__ import annotations

import attrs

#: ``gpuInstanceId`` / ``computeInstanceId`` of a process that runs on a GPU without MIG.
NO_INSTANCE = 0xFFFFFFFF


@attrs.define
class MemoryInfo:
    """Like ``c_nvmlMemory_t``: bytes."""

    total: int
    free: int
    used: int


@attrs.define
class Utilization:
    """Like ``c_nvmlUtilization_t``: percent over the last sample period."""

    gpu: int
    memory: int


@attrs.define
class DeviceAttributes:
    """Like ``c_nvmlDeviceAttributes`` (only MIG handles have them); NVML's field names."""

    multiprocessorCount: int
    sharedCopyEngineCount: int
    sharedDecoderCount: int
    sharedEncoderCount: int
    sharedJpegCount: int
    sharedOfaCount: int
    gpuInstanceSliceCount: int
    computeInstanceSliceCount: int
    memorySizeMB: int


@attrs.define
class GpuInstanceProfileInfo:
    """Like ``c_nvmlGpuInstanceProfileInfo_v2_t`` (``name`` is bytes, as the C array is)."""

    version: int
    id: int
    isP2pSupported: int
    sliceCount: int
    instanceCount: int
    multiprocessorCount: int
    memorySizeMB: int
    name: bytes


@attrs.define
class ProcessInfo:
    """Like pynvml's friendly process object (``nvmlDeviceGetComputeRunningProcesses``)."""

    pid: int
    usedGpuMemory: int | None
    gpuInstanceId: int = NO_INSTANCE
    computeInstanceId: int = NO_INSTANCE


@attrs.define
class SimGpmSample:
    """A GPM sample: when it was taken and the SM-busy time accumulated by then."""

    gpu: int | None = None
    gpu_instance_id: int | None = None
    at: float = 0.0
    busy: float = 0.0


@attrs.define
class SimGpmMetric:
    metricId: int = 0
    nvmlReturn: int = 0
    value: float = 0.0


@attrs.define
class SimGpmMetricsGet:
    """Stands in for pynvml's ``c_nvmlGpmMetricsGet_t``: the same fields, plain Python."""

    version: int = 0
    numMetrics: int = 0
    sample1: SimGpmSample | None = None
    sample2: SimGpmSample | None = None
    metrics: list[SimGpmMetric] = attrs.Factory(lambda: [SimGpmMetric() for _ in range(98)])


@attrs.define
class SimGpmSupport:
    version: int = 0
    isSupportedDevice: int = 0


@attrs.frozen
class SimHandle:
    """An opaque device handle: a GPU (``mig`` None) or one of its MIG devices."""

    gpu: int
    mig: int | None = None
