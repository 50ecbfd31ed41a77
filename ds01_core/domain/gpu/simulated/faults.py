"""Real driver behaviours a clean topology never shows, switchable per test on the simulated host.

Real NVML fails in ways that once hid bugs: a process query answers ``NoPermission`` or
``Unknown`` for a while; an old driver lacks the ``_v3`` process query (pynvml then raises
``NVMLLibraryMismatchError``, which is *not* an ``NVMLError``) and the ``_v2`` memory query;
memory "used" from the v1 query includes what the driver reserves; every GPM sample must be
freed, even when reading it failed; a GPU without MIG profiles answers every profile-info call
with an error. :class:`Faults` holds the switches (all off by default) and the ledger of GPM
samples; :class:`~ds01_core.domain.gpu.simulated.nvml.SimulatedNvml` consults it as
``nvml.faults`` before answering.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pynvml

from ds01_core.domain.gpu.simulated.health_faults import HealthFault
from ds01_core.domain.gpu.simulated.values import SimHandle


@attrs.define
class MemoryInfoV2:
    """Like ``c_nvmlMemory_v2_t``: bytes; ``used`` leaves out what the driver reserves."""

    version: int
    total: int
    reserved: int
    free: int
    used: int


@attrs.define
class Faults:
    """What the simulated driver does wrong, or differently, on purpose.

    :ivar process_errors: GPU index, or ``(GPU index, MIG position)``, -> the NVMLError class
        its process queries raise (on the GPU and, for an index, all its MIG devices).
    :ivar old_driver: no ``_v3`` process query and no ``_v2`` memory query.
    :ivar reserved_memory: GPU index -> bytes the driver reserves (v1 "used" includes them).
    :ivar mig_reserved_memory: GPU index -> bytes the driver reserves on each of its MIG devices.
    :ivar gpm_sample_error: the NVMLError class ``nvmlGpmMigSampleGet`` raises.
    :ivar profile_info_error: the NVMLError class ``nvmlDeviceGetGpuInstanceProfileInfo`` raises.
    :ivar calls: how often each call consulted here was made.
    :ivar gpm_samples: the GPM samples allocated and not yet freed, by ``id``.
    :ivar health: GPU index -> what is wrong with it (hot, ECC errors, XIDs, lost, …; see
        :mod:`~ds01_core.domain.gpu.simulated.health_faults`); a faults file replaces it.
    """

    process_errors: dict[int | tuple[int, int], type[Exception]] = attrs.Factory(dict)
    old_driver: bool = False
    reserved_memory: dict[int, int] = attrs.Factory(dict)
    gpm_sample_error: type[Exception] | None = None
    profile_info_error: type[Exception] | None = None
    calls: Counter[str] = attrs.Factory(Counter)
    mig_reserved_memory: dict[int, int] = attrs.Factory(dict)
    gpm_samples: dict[int, Any] = attrs.Factory(dict)
    health: dict[int, HealthFault] = attrs.Factory(dict)

    def process_query(self, handle: SimHandle, call: str) -> None:
        """Raise what the process query ``call`` raises on ``handle``, if anything."""
        self.calls[call] += 1
        if self.old_driver and call == "nvmlDeviceGetComputeRunningProcesses":
            # what pynvml's throwOnVersionMismatch turns FunctionNotFound (of _v3) into
            raise pynvml.NVMLLibraryMismatchError(
                "Unversioned function called and the pyNVML version does not match the NVML "
                "lib version."
            )
        error = self.process_errors.get(handle.gpu)
        if handle.mig is not None:
            error = self.process_errors.get((handle.gpu, handle.mig), error)
        if error is not None:
            raise error()

    def memory_v2(self) -> None:
        """Raise as a driver without ``nvmlDeviceGetMemoryInfo_v2`` does."""
        self.calls["nvmlDeviceGetMemoryInfo_v2"] += 1
        if self.old_driver:
            raise pynvml.NVMLError_FunctionNotFound()

    def reserved(self, handle: SimHandle) -> int:
        """Bytes the driver reserves on a whole GPU, or on a MIG device (``mig_reserved_memory``)."""
        if handle.mig is not None:
            return self.mig_reserved_memory.get(handle.gpu, 0)
        return self.reserved_memory.get(handle.gpu, 0)

    def gpm_alloc(self, sample: Any) -> Any:
        self.gpm_samples[id(sample)] = sample
        return sample

    def gpm_free(self, sample: Any) -> None:
        """Free a sample; freeing one that is not allocated is an error (a double free)."""
        if self.gpm_samples.pop(id(sample), None) is None:
            raise pynvml.NVMLError_InvalidArgument()

    def gpm_get(self) -> None:
        self.calls["nvmlGpmMigSampleGet"] += 1
        if self.gpm_sample_error is not None:
            raise self.gpm_sample_error()

    def profile_info(self) -> None:
        self.calls["nvmlDeviceGetGpuInstanceProfileInfo"] += 1
        if self.profile_info_error is not None:
            raise self.profile_info_error()
