"""NVML's own answers, read call by call with no interpretation, to set beside the provider's.

Nothing here decides what a reading means (that is the provider's job, and the thing under
test): each function asks NVML through the read-only wrapper and keeps every answer, value or
error, as an :class:`~ds01_core.services.gpu_selftest.answers.Answer`.
"""

from __future__ import annotations

from typing import Any

import attrs

from ds01_core.services.gpu_selftest.answers import Answer, ask, call

#: What a GPU without a handle has for every other reading.
NOT_READ = Answer(error="not read: no handle")

#: MIG indices that answer these hold no device: expected holes, not errors.
EMPTY_MIG_INDEX = ("NVMLError_NotFound", "NVMLError_InvalidArgument")


def text(value: Any) -> str:
    """NVML strings: ``str`` from current pynvml, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


@attrs.define
class RawMig:
    """One MIG device as NVML lists it under its GPU, by NVML's MIG index."""

    index: int
    handle: Any
    uuid: Answer
    name: Answer
    gpu_instance_id: Answer
    compute_instance_id: Answer
    attributes: Answer


@attrs.define
class RawGpu:
    """One GPU as NVML answers for it: identity, memory, MIG layout."""

    index: int
    handle: Answer
    uuid: Answer = NOT_READ
    name: Answer = NOT_READ
    minor_number: Answer = NOT_READ
    memory: Answer = NOT_READ
    mig_mode: Answer = NOT_READ
    migs: list[RawMig] = attrs.Factory(list)
    mig_errors: list[str] = attrs.Factory(list)

    @property
    def mig_enabled(self) -> bool:
        mode = self.mig_mode
        return mode.ok and mode.value is not None and int(mode.value[0]) == 1

    def leaves(self) -> list[tuple[str, Any]]:
        """``(uuid, handle)`` of each leaf device NVML names: the GPU, or its MIG devices."""
        if not self.mig_enabled:
            return [(text(self.uuid.value), self.handle.value)] if self.uuid.ok else []
        return [(text(m.uuid.value), m.handle) for m in self.migs if m.uuid.ok]


def read_system(nv: Any) -> dict[str, Answer]:
    """Driver, NVML and CUDA versions and the GPU count."""
    return {
        "driver": ask(nv, "nvmlSystemGetDriverVersion"),
        "nvml": ask(nv, "nvmlSystemGetNVMLVersion"),
        "cuda": ask(nv, "nvmlSystemGetCudaDriverVersion"),
        "count": ask(nv, "nvmlDeviceGetCount"),
    }


def read_gpu(nv: Any, index: int) -> RawGpu:
    """A GPU's identity, memory and MIG devices (every NVML MIG index asked)."""
    handle = ask(nv, "nvmlDeviceGetHandleByIndex", index)
    gpu = RawGpu(index=index, handle=handle)
    if not handle.ok:
        return gpu
    h = handle.value
    gpu.uuid = ask(nv, "nvmlDeviceGetUUID", h)
    gpu.name = ask(nv, "nvmlDeviceGetName", h)
    gpu.minor_number = ask(nv, "nvmlDeviceGetMinorNumber", h)
    gpu.memory = ask(nv, "nvmlDeviceGetMemoryInfo", h)
    gpu.mig_mode = ask(nv, "nvmlDeviceGetMigMode", h)
    if gpu.mig_enabled:
        _read_migs(nv, gpu, h)
    return gpu


def _read_migs(nv: Any, gpu: RawGpu, handle: Any) -> None:
    count = ask(nv, "nvmlDeviceGetMaxMigDeviceCount", handle)
    if not count.ok:
        gpu.mig_errors.append(f"MIG device count: {count.describe()}")
        return
    for mig_index in range(int(count.value)):
        found = ask(nv, "nvmlDeviceGetMigDeviceHandleByIndex", handle, mig_index)
        if found.kind in EMPTY_MIG_INDEX:
            continue
        if not found.ok:
            gpu.mig_errors.append(f"MIG index {mig_index}: {found.describe()}")
            continue
        mig = found.value
        gpu.migs.append(
            RawMig(
                index=mig_index,
                handle=mig,
                uuid=ask(nv, "nvmlDeviceGetUUID", mig),
                name=ask(nv, "nvmlDeviceGetName", mig),
                gpu_instance_id=ask(nv, "nvmlDeviceGetGpuInstanceId", mig),
                compute_instance_id=ask(nv, "nvmlDeviceGetComputeInstanceId", mig),
                attributes=ask(nv, "nvmlDeviceGetAttributes", mig),
            )
        )


def read_processes(nv: Any, handle: Any) -> Answer:
    """PIDs with their memory on one leaf, as ``{pid: used bytes or None}``.

    Drivers without the ``_v3`` call make pynvml raise ``NVMLLibraryMismatchError``; the
    ``_v2`` call is asked then, and the answer says so.
    """
    answer = ask(nv, "nvmlDeviceGetComputeRunningProcesses", handle)
    note = None
    if answer.kind == "NVMLLibraryMismatchError":
        answer = ask(nv, "nvmlDeviceGetComputeRunningProcesses_v2", handle)
        note = "v2 call (the driver has no v3)"
    if not answer.ok:
        return answer
    pids = {
        int(p.pid): (None if p.usedGpuMemory is None else int(p.usedGpuMemory))
        for p in answer.value
    }
    return Answer(value=pids, note=note)


def read_health(nv: Any, handle: Any) -> dict[str, Answer]:
    """ECC mode and error counts (volatile and aggregate), clocks now and at most."""
    uncorrected = getattr(nv, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
    corrected = getattr(nv, "NVML_MEMORY_ERROR_TYPE_CORRECTED", 0)
    volatile = getattr(nv, "NVML_VOLATILE_ECC", 0)
    aggregate = getattr(nv, "NVML_AGGREGATE_ECC", 1)
    sm, mem = getattr(nv, "NVML_CLOCK_SM", 1), getattr(nv, "NVML_CLOCK_MEM", 2)
    found = {"ecc mode": ask(nv, "nvmlDeviceGetEccMode", handle)}
    if found["ecc mode"].ok:
        for label, kind, counter in (
            ("uncorrected volatile", uncorrected, volatile),
            ("corrected volatile", corrected, volatile),
            ("uncorrected aggregate", uncorrected, aggregate),
            ("corrected aggregate", corrected, aggregate),
        ):
            found[label] = ask(nv, "nvmlDeviceGetTotalEccErrors", handle, kind, counter)
    found["SM clock"] = ask(nv, "nvmlDeviceGetClockInfo", handle, sm)
    found["SM max"] = ask(nv, "nvmlDeviceGetMaxClockInfo", handle, sm)
    found["memory clock"] = ask(nv, "nvmlDeviceGetClockInfo", handle, mem)
    found["memory max"] = ask(nv, "nvmlDeviceGetMaxClockInfo", handle, mem)
    return found


# -- GPM: MIG utilisation between two samples ----------------------------------------------------


def gpm_sample(nv: Any, handle: Any, gpu_instance_id: int) -> Answer:
    """A GPM sample of one GPU instance; freed again here when taking it fails."""
    allocated = ask(nv, "nvmlGpmSampleAlloc")
    if not allocated.ok:
        return allocated
    taken = ask(nv, "nvmlGpmMigSampleGet", handle, gpu_instance_id, allocated.value)
    if not taken.ok:
        free_sample(nv, allocated.value)
        return taken
    return Answer(value=allocated.value)


def free_sample(nv: Any, sample: Any) -> None:
    ask(nv, "nvmlGpmSampleFree", sample)


def gpm_sm_utilization(nv: Any, first: Any, second: Any) -> Answer:
    """SM utilisation (percent) between two samples of one GPU instance."""
    try:
        request = nv.c_nvmlGpmMetricsGet_t()
        request.version = nv.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = 1
        request.sample1 = first
        request.sample2 = second
        request.metrics[0].metricId = nv.NVML_GPM_METRIC_SM_UTIL
    except AttributeError as exc:
        return Answer(error=f"this NVML has no GPM metrics ({exc})", unsupported=True)
    got = ask(nv, "nvmlGpmMetricsGet", request)
    if not got.ok:
        return got
    metric = request.metrics[0]
    if int(metric.nvmlReturn) != 0:
        return Answer(error=f"metric answered NVML return code {metric.nvmlReturn}")
    return call(float, metric.value)
