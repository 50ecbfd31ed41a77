"""The NVML provider: GPUs, MIG devices, memory, utilisation, power and processes via ``pynvml``.

One NVML session and the GPU handles live as long as the provider (no ``nvidia-smi``
subprocesses, no re-initialisation per query). MIG devices are enumerated on every listing,
since an admin may repartition a GPU while ds01 runs; the calls are in-process and cheap.

Reading is defensive, because drivers differ by GPU generation and by privilege: a metric the
hardware does not give (utilisation on MIG, power on some boards) is ``None``; a GPU that is lost
or cannot be identified is logged and left out, never offered to anyone; nothing here crashes
the listing for one bad device. A process query that fails is *unknown*, never "no processes"
(:meth:`NvmlProvider.process_listing` says which slots were read), and sets the GPU's
:meth:`~NvmlProvider.health` until it succeeds again.

The parts: :mod:`~ds01_core.domain.gpu.nvml.session` holds the session and decides what a failed
read means, :mod:`~ds01_core.domain.gpu.nvml.mig` enumerates MIG devices,
:mod:`~ds01_core.domain.gpu.nvml.slots` turns the readings into slots (no NVML call), and the
provider here reads each GPU and its processes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs

from ds01_core.domain.gpu.base import ProcessListing
from ds01_core.domain.gpu.gpm import GpmSampler
from ds01_core.domain.gpu.health import GpuTelemetry
from ds01_core.domain.gpu.nvml.mig import MigReader
from ds01_core.domain.gpu.nvml.session import NvmlSession
from ds01_core.domain.gpu.nvml.slots import text, whole_slot
from ds01_core.domain.gpu.nvml.telemetry import TelemetryReader
from ds01_core.domain.gpu.nvml.utilization import UtilizationReader
from ds01_core.domain.model import Gpu, GpuProcess, GpuSlot

log = logging.getLogger(__name__)

#: The health key of a failed process query (``ds01 gpu status`` shows it).
PROCESS_QUERY = "nvmlDeviceGetComputeRunningProcesses"


class NvmlProvider:
    """GPU inventory read through NVML (``pynvml``, or any object with the same API).

    :param nvml: the ``pynvml`` module or a stand-in (the simulated host, a test fake).
    :raises GpuProviderError: when NVML does not load (no driver, no library).
    """

    def __init__(
        self, nvml: Any | None = None, *, name: str = "nvml", description: str | None = None
    ):
        self.name = name
        self._session = NvmlSession(nvml, name)
        self._nvml = self._session.nvml
        self._mig = MigReader(self._session)
        self._gpm = GpmSampler(self._nvml)
        self._utilization = UtilizationReader(self._session)
        self._telemetry = TelemetryReader(self._session)
        self.description = description or self._describe()
        #: ``(time.monotonic(), gpus)`` of the last listing, so that a reader later in the same
        #: daemon cycle (the gpu-health step) reuses it instead of walking NVML again
        self.last_listing: tuple[float, list[Gpu]] | None = None

    # -- the provider interface -------------------------------------------------------------

    def gpus(self) -> list[Gpu]:
        """Every readable GPU, in index order, with its slots."""
        self._session.require_open()
        found = (
            self._session.guarded(index, self._read_gpu) for index in range(self._session.count)
        )
        gpus = [gpu for gpu in found if gpu is not None]
        self.last_listing = (time.monotonic(), gpus)
        return gpus

    def slots(self) -> list[GpuSlot]:
        """Leaf slots: whole GPUs without MIG, the MIG instances of GPUs with MIG."""
        return [slot for gpu in self.gpus() for slot in gpu.slots]

    def processes(self) -> list[GpuProcess]:
        """Compute processes per leaf device, ``slot_uuid`` naming the leaf (those that could
        be read: :meth:`process_listing` also says which could not)."""
        return list(self.process_listing().processes)

    def process_listing(self) -> ProcessListing:
        """The compute processes per leaf device, and which leaves could be read."""
        self._session.require_open()
        found: list[GpuProcess] = []
        read: set[str] = set()
        complete = True
        for index in range(self._session.count):
            listing = self._session.guarded(index, self._read_processes, "listing processes")
            if listing is None:
                complete = False
                continue
            found += listing.processes
            read |= listing.read or frozenset()
            complete = complete and listing.complete
        return ProcessListing(tuple(found), frozenset(read), complete)

    def health(self) -> dict[int, str]:
        """GPU index -> ``"ok"`` or ``"degraded: <call>: <error>"``, as of the last reads."""
        return self._session.health()

    def telemetry(self) -> list[GpuTelemetry]:
        """Each whole GPU's sensors and error counters (never per MIG device), in index order;
        a lost GPU is ``fell_off_bus``, a reading it lacks is None. Never raises for one GPU
        (:mod:`~ds01_core.domain.gpu.nvml.telemetry`)."""
        return self._telemetry.read_all()

    def mig_utilization(self) -> dict[str, float | None]:
        """MIG slot UUID → SM utilisation (percent) since the last call, from GPM where the GPU
        supports it; slots without GPM (or on their first call) map to None."""
        result: dict[str, float | None] = {}
        alive = []
        for gpu in self.gpus():
            handle = self._session.handle(gpu.index)
            if not gpu.mig_enabled or handle is None:
                continue
            supported = self._gpm.supported(gpu.index, handle)
            # one sample per GPU instance, shared by its compute instances (one slot each): a
            # second sample would span microseconds, not the cycle
            per_instance: dict[int, float | None] = {}
            for slot in gpu.slots:
                gi = slot.gpu_instance_id
                if gi is None:
                    continue
                alive.append((gpu.index, gi))
                if gi not in per_instance:
                    per_instance[gi] = (
                        self._gpm.sm_utilization(gpu.index, handle, gi) if supported else None
                    )
                result[slot.uuid] = per_instance[gi]
        self._gpm.forget(alive)
        return result

    def close(self) -> None:
        """Free the GPM samples and the XID event set held, then end the NVML session (once;
        later calls do nothing)."""
        self._gpm.close()
        self._telemetry.close()
        self._session.close()

    def __enter__(self) -> NvmlProvider:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _describe(self) -> str:
        version = self._session.metric("driver version", self._nvml.nvmlSystemGetDriverVersion)
        driver = text(version) if version is not None else "unknown driver"
        count = self._session.count
        return f"NVML {driver}, {count} GPU{'s' if count != 1 else ''}"

    # -- reading one GPU ----------------------------------------------------------------------

    def _read_gpu(self, index: int, handle: Any) -> Gpu:
        nv = self._nvml
        uuid = text(nv.nvmlDeviceGetUUID(handle))
        model = text(nv.nvmlDeviceGetName(handle))
        memory = self._session.memory(handle)
        mig_enabled = self._mig.enabled(handle)
        # MIG mode: no whole-GPU utilisation (GPM covers the instances), not asked
        util = None if mig_enabled else self._utilization.read(index, handle)
        power = self._session.metric("power", nv.nvmlDeviceGetPowerUsage, handle)
        energy = self._session.metric("energy", nv.nvmlDeviceGetTotalEnergyConsumption, handle)
        gpu = Gpu(
            index=index,
            uuid=uuid,
            model=model,
            memory_total=int(memory.total) if memory is not None else 0,
            memory_used=int(memory.used) if memory is not None else 0,
            mig_enabled=mig_enabled,
            total_slices=0,
            slots=(),
            utilization=util,
            power_watts=power / 1000 if power is not None else None,
            energy_joules=energy / 1000 if energy is not None else None,
            minor_number=self._session.metric("minor number", nv.nvmlDeviceGetMinorNumber, handle),
        )
        if gpu.mig_enabled:
            return self._mig.with_slots(gpu, handle)
        total = self._mig.total_slices(index, handle) or 1
        return attrs.evolve(gpu, total_slices=total, slots=(whole_slot(gpu, total),))

    # -- processes ----------------------------------------------------------------------------

    def _leaves(self, index: int, handle: Any) -> tuple[list[tuple[str, Any]], bool]:
        """``(uuid, handle)`` of the leaf devices of one GPU, and whether every one was listed
        (a MIG device whose handle or UUID cannot be read is a leaf of unknown processes)."""
        nv = self._nvml
        if not self._mig.enabled(handle):
            self._listed_every_mig_device(index)
            return [(text(nv.nvmlDeviceGetUUID(handle)), handle)], True
        leaves = []
        complete = True
        for mig in self._mig.handles(index, handle):
            try:
                leaves.append((text(nv.nvmlDeviceGetUUID(mig)), mig))
            except nv.NVMLError as exc:
                if isinstance(exc, nv.NVMLError_GpuIsLost):
                    raise
                log.debug("GPU %d: a MIG device's UUID could not be read (%s)", index, exc)
                self._session.degrade(index, "nvmlDeviceGetUUID (MIG)", str(exc))
                complete = False
        if index in self._mig.unlisted:
            self._session.degrade(index, "listing MIG devices", self._mig.unlisted[index])
            complete = False
        elif complete:
            self._listed_every_mig_device(index)
        return leaves, complete

    def _listed_every_mig_device(self, index: int) -> None:
        self._session.recover(index, "listing MIG devices")
        self._session.recover(index, "nvmlDeviceGetUUID (MIG)")

    def _read_processes(self, index: int, handle: Any) -> ProcessListing:
        leaves, complete = self._leaves(index, handle)
        found = []
        read = set()
        unread = {}
        for uuid, leaf in leaves:
            try:
                infos = self._session.compute_processes(leaf)
            except self._nvml.NVMLError as exc:
                if isinstance(exc, self._nvml.NVMLError_GpuIsLost):
                    raise
                log.debug("GPU %d: processes on %s unknown: %s", index, uuid, exc)
                unread[uuid] = str(exc)
                continue
            read.add(uuid)
            for info in infos:
                used = info.usedGpuMemory
                found.append(
                    GpuProcess(
                        pid=int(info.pid),
                        slot_uuid=uuid,
                        used_memory=int(used) if used is not None else None,
                    )
                )
        if unread:
            self._session.degrade(
                index, PROCESS_QUERY, "; ".join(f"{u}: {e}" for u, e in sorted(unread.items()))
            )
        else:
            self._session.recover(index, PROCESS_QUERY)
        return ProcessListing(tuple(found), frozenset(read), complete)
