"""The NVML provider: GPUs, MIG devices, memory, utilisation, power and processes via ``pynvml``.

One NVML session and the GPU handles live as long as the provider (no ``nvidia-smi``
subprocesses, no re-initialisation per query). MIG devices are enumerated on every listing,
since an admin may repartition a GPU while ds01 runs; the calls are in-process and cheap.

Reading is defensive, because drivers differ by GPU generation and by privilege: a metric the
hardware does not give (utilisation on MIG, power on some boards) is ``None``; a GPU that is lost
or cannot be identified is logged and left out, never offered to anyone; nothing here crashes
the listing for one bad device.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from ds01_core.domain.gpu.base import GpuProviderError
from ds01_core.domain.gpu.gpm import GpmSampler
from ds01_core.domain.model import Gpu, GpuProcess, GpuSlot

log = logging.getLogger(__name__)

MIB = 1024**2
T = TypeVar("T")

_SLICES_IN_PROFILE = re.compile(r"^(?:\d+c\.)?(\d+)g\.")


@attrs.frozen
class _MigDevice:
    """What one MIG device reports, before the GPU's total slices are known."""

    uuid: str
    profile: str
    slices: int
    gpu_instance_id: int
    compute_instance_id: int
    memory_total: int
    memory_used: int


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise GpuProviderError(
            f"NVML did not load: the pynvml module is missing ({exc}); install nvidia-ml-py"
        ) from exc
    return pynvml


def _text(value: Any) -> str:
    """NVML strings: ``str`` from current pynvml, ``bytes`` from older releases."""
    return value.decode() if isinstance(value, bytes) else str(value)


def profile_from_name(name: str) -> str | None:
    """``2g.20gb`` from a MIG device name such as ``NVIDIA A100-SXM4-80GB MIG 2g.20gb``."""
    _head, sep, tail = name.rpartition("MIG ")
    if not sep:
        return None
    return tail.strip() or None


def composed_profile(slices: int, memory_mib: int) -> str:
    """A profile name for drivers whose MIG device names do not carry one."""
    return f"{slices}g.{round(memory_mib / 1024)}gb"


class NvmlProvider:
    """GPU inventory read through NVML (``pynvml``, or any object with the same API).

    :param nvml: the ``pynvml`` module or a stand-in (the simulated host, a test fake).
    :raises GpuProviderError: when NVML does not load (no driver, no library).
    """

    def __init__(
        self, nvml: Any | None = None, *, name: str = "nvml", description: str | None = None
    ):
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self.name = name
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as exc:
            raise GpuProviderError(f"NVML did not load: {exc}") from exc
        self._open = True
        try:
            self._count = int(self._nvml.nvmlDeviceGetCount())
        except self._nvml.NVMLError as exc:
            self.close()
            raise GpuProviderError(f"NVML loaded but could not count the GPUs: {exc}") from exc
        self._handles: dict[int, Any] = {}
        self._slices: dict[int, int] = {}
        self._unreadable: set[int] = set()
        self._gpm = GpmSampler(self._nvml)
        for index in range(self._count):
            self._handle(index)
        self.description = description or self._describe()

    # -- the provider interface -------------------------------------------------------------

    def gpus(self) -> list[Gpu]:
        """Every readable GPU, in index order, with its slots."""
        self._require_open()
        found = (self._guarded(index, self._read_gpu) for index in range(self._count))
        return [gpu for gpu in found if gpu is not None]

    def slots(self) -> list[GpuSlot]:
        """Leaf slots: whole GPUs without MIG, the MIG instances of GPUs with MIG."""
        return [slot for gpu in self.gpus() for slot in gpu.slots]

    def processes(self) -> list[GpuProcess]:
        """Compute processes per leaf device, ``slot_uuid`` naming the leaf."""
        self._require_open()
        found: list[GpuProcess] = []
        for index in range(self._count):
            found += self._guarded(index, self._read_processes) or []
        return found

    def mig_utilization(self) -> dict[str, float | None]:
        """MIG slot UUID → SM utilisation (percent) since the last call, from GPM where the GPU
        supports it; slots without GPM (or on their first call) map to None."""
        result: dict[str, float | None] = {}
        alive = []
        for gpu in self.gpus():
            handle = self._handle(gpu.index)
            if not gpu.mig_enabled or handle is None:
                continue
            supported = self._gpm.supported(gpu.index, handle)
            for slot in gpu.slots:
                if slot.gpu_instance_id is None:
                    continue
                alive.append((gpu.index, slot.gpu_instance_id))
                result[slot.uuid] = (
                    self._gpm.sm_utilization(gpu.index, handle, slot.gpu_instance_id)
                    if supported
                    else None
                )
        self._gpm.forget(alive)
        return result

    def close(self) -> None:
        """End the NVML session (once; later calls do nothing)."""
        if not getattr(self, "_open", False):
            return
        self._open = False
        self._handles = {}
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.warning("NVML shutdown failed: %s", exc)

    def __enter__(self) -> NvmlProvider:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- handles and error policy -----------------------------------------------------------

    def _describe(self) -> str:
        version = self._metric("driver version", self._nvml.nvmlSystemGetDriverVersion)
        driver = _text(version) if version is not None else "unknown driver"
        return f"NVML {driver}, {self._count} GPU{'s' if self._count != 1 else ''}"

    def _require_open(self) -> None:
        if not self._open:
            raise GpuProviderError(f"the {self.name} GPU provider is closed")

    def _handle(self, index: int) -> Any | None:
        """The cached handle of GPU ``index``; fetched again after a failure."""
        handle = self._handles.get(index)
        if handle is not None:
            return handle
        try:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        except self._nvml.NVMLError as exc:
            self._report_unreadable(index, exc)
            return None
        self._handles[index] = handle
        return handle

    def _guarded(self, index: int, read: Callable[[int, Any], T]) -> T | None:
        """``read(index, handle)``, or None (logged) when the GPU is lost or unreadable."""
        handle = self._handle(index)
        if handle is None:
            return None
        try:
            result = read(index, handle)
        except self._nvml.NVMLError as exc:
            if isinstance(exc, self._nvml.NVMLError_GpuIsLost):
                self._handles.pop(index, None)
            self._report_unreadable(index, exc)
            return None
        if index in self._unreadable:
            self._unreadable.discard(index)
            log.info("GPU %d is readable again", index)
        return result

    def _report_unreadable(self, index: int, exc: Exception) -> None:
        """Log once per outage (the daemon lists GPUs every cycle), then quietly."""
        lost = isinstance(exc, self._nvml.NVMLError_GpuIsLost)
        what = "is lost" if lost else "could not be read"
        if index in self._unreadable:
            log.debug("GPU %d %s (%s): left out", index, what, exc)
            return
        self._unreadable.add(index)
        log.log(
            logging.ERROR if lost else logging.WARNING, "GPU %d %s (%s): left out", index, what, exc
        )

    def _metric(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """One reading, or None when NVML cannot give it; a lost GPU still raises."""
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            if isinstance(exc, self._nvml.NVMLError_GpuIsLost):
                raise
            log.debug("%s unavailable: %s", what, exc)
            return None

    # -- reading one GPU ----------------------------------------------------------------------

    def _read_gpu(self, index: int, handle: Any) -> Gpu:
        nv = self._nvml
        uuid = _text(nv.nvmlDeviceGetUUID(handle))
        model = _text(nv.nvmlDeviceGetName(handle))
        memory = self._metric("memory", nv.nvmlDeviceGetMemoryInfo, handle)
        util = self._metric("utilisation", nv.nvmlDeviceGetUtilizationRates, handle)
        power = self._metric("power", nv.nvmlDeviceGetPowerUsage, handle)
        energy = self._metric("energy", nv.nvmlDeviceGetTotalEnergyConsumption, handle)
        gpu = Gpu(
            index=index,
            uuid=uuid,
            model=model,
            memory_total=int(memory.total) if memory is not None else 0,
            memory_used=int(memory.used) if memory is not None else 0,
            mig_enabled=self._mig_enabled(handle),
            total_slices=0,
            slots=(),
            utilization=float(util.gpu) if util is not None else None,
            power_watts=power / 1000 if power is not None else None,
            energy_joules=energy / 1000 if energy is not None else None,
        )
        if gpu.mig_enabled:
            return self._with_mig_slots(gpu, handle)
        total = self._total_slices(index, handle) or 1
        return attrs.evolve(gpu, total_slices=total, slots=(_whole_slot(gpu, total),))

    def _mig_enabled(self, handle: Any) -> bool:
        mode = self._metric("MIG mode", self._nvml.nvmlDeviceGetMigMode, handle)
        return mode is not None and mode[0] == self._nvml.NVML_DEVICE_MIG_ENABLE

    def _total_slices(self, index: int, handle: Any) -> int | None:
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
        if not counts:
            return None
        self._slices[index] = max(counts)
        return self._slices[index]

    def _with_mig_slots(self, gpu: Gpu, handle: Any) -> Gpu:
        devices = self._read_mig_devices(gpu.index, handle)
        total = self._total_slices(gpu.index, handle)
        if total is None:
            total = _slices_in_use(devices)
            log.warning(
                "GPU %d: NVML gives no MIG profile info; weighing its instances over the %d "
                "slices in use",
                gpu.index,
                total,
            )
        slots = tuple(_mig_slot(gpu, dev, total) for dev in devices)
        return attrs.evolve(gpu, total_slices=total, slots=slots)

    def _mig_handles(self, index: int, handle: Any) -> list[Any]:
        nv = self._nvml
        found = []
        for mig_index in range(int(nv.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                found.append(nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index))
            except nv.NVMLError_NotFound:
                continue
            except nv.NVMLError as exc:
                if isinstance(exc, nv.NVMLError_GpuIsLost):
                    raise
                log.warning("GPU %d: MIG device %d could not be read (%s)", index, mig_index, exc)
        return found

    def _read_mig_devices(self, index: int, handle: Any) -> list[_MigDevice]:
        devices = []
        for mig in self._mig_handles(index, handle):
            try:
                device = self._read_mig_device(mig)
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

    def _read_mig_device(self, mig: Any) -> _MigDevice | None:
        nv = self._nvml
        name = _text(nv.nvmlDeviceGetName(mig))
        attributes = self._metric("MIG attributes", nv.nvmlDeviceGetAttributes, mig)
        memory = self._metric("MIG memory", nv.nvmlDeviceGetMemoryInfo, mig)
        memory_mib = int(attributes.memorySizeMB) if attributes is not None else 0
        memory_total = int(memory.total) if memory is not None else memory_mib * MIB
        profile = profile_from_name(name)
        slices = _mig_slices(attributes, profile)
        if slices is None:
            return None
        return _MigDevice(
            uuid=_text(nv.nvmlDeviceGetUUID(mig)),
            profile=profile or composed_profile(slices, memory_total // MIB),
            slices=slices,
            gpu_instance_id=int(nv.nvmlDeviceGetGpuInstanceId(mig)),
            compute_instance_id=int(nv.nvmlDeviceGetComputeInstanceId(mig)),
            memory_total=memory_total,
            memory_used=int(memory.used) if memory is not None else 0,
        )

    # -- processes ----------------------------------------------------------------------------

    def _leaves(self, index: int, handle: Any) -> list[tuple[str, Any]]:
        """``(uuid, handle)`` of the leaf devices of one GPU."""
        nv = self._nvml
        if not self._mig_enabled(handle):
            return [(_text(nv.nvmlDeviceGetUUID(handle)), handle)]
        return [(_text(nv.nvmlDeviceGetUUID(mig)), mig) for mig in self._mig_handles(index, handle)]

    def _read_processes(self, index: int, handle: Any) -> list[GpuProcess]:
        found = []
        for uuid, leaf in self._leaves(index, handle):
            infos = self._metric(
                f"processes on {uuid}", self._nvml.nvmlDeviceGetComputeRunningProcesses, leaf
            )
            for info in infos or ():
                used = info.usedGpuMemory
                found.append(
                    GpuProcess(
                        pid=int(info.pid),
                        slot_uuid=uuid,
                        used_memory=int(used) if used is not None else None,
                    )
                )
        return found


def _mig_slices(attributes: Any, profile: str | None) -> int | None:
    """Compute slices of a MIG device: from NVML's attributes, else from its profile name."""
    if attributes is not None and attributes.gpuInstanceSliceCount > 0:
        return int(attributes.gpuInstanceSliceCount)
    match = _SLICES_IN_PROFILE.match(profile or "")
    return int(match.group(1)) if match else None


def _slices_in_use(devices: list[_MigDevice]) -> int:
    """Slices taken by distinct GPU instances: a lower bound on the GPU's total (never 0)."""
    per_instance = {d.gpu_instance_id: d.slices for d in devices}
    return max(sum(per_instance.values()), 1)


def _whole_slot(gpu: Gpu, total_slices: int) -> GpuSlot:
    return GpuSlot(
        uuid=gpu.uuid,
        kind="gpu",
        gpu_index=gpu.index,
        gpu_uuid=gpu.uuid,
        model=gpu.model,
        compute_slices=total_slices,
        total_slices=total_slices,
        memory_total=gpu.memory_total,
        memory_used=gpu.memory_used,
        utilization=gpu.utilization,
    )


def _mig_slot(gpu: Gpu, device: _MigDevice, total_slices: int) -> GpuSlot:
    return GpuSlot(
        uuid=device.uuid,
        kind="mig",
        gpu_index=gpu.index,
        gpu_uuid=gpu.uuid,
        model=gpu.model,
        compute_slices=device.slices,
        total_slices=total_slices,
        memory_total=device.memory_total,
        memory_used=device.memory_used,
        profile=device.profile,
        gpu_instance_id=device.gpu_instance_id,
        compute_instance_id=device.compute_instance_id,
        utilization=None,
    )
