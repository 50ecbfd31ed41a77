"""The simulated host's answers to NVML's health calls: sensors, ECC, retirement, XID events.

Plausible values from the topology (40 °C, slowdown at 90 and shutdown at 95 °C, the model's
power limit and clocks, no ECC error), bent by the faults in ``faults.health``
(:mod:`~ds01_core.domain.gpu.simulated.health_faults`). As on real GPUs, Ampere and newer remap
rows and answer ``NotSupported`` for retired pages; older ones the other way round. A GPU with
``fell_off_bus`` answers every call with ``NVMLError_GpuIsLost``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pynvml

from ds01_core.domain.gpu.health import THROTTLE_REASONS
from ds01_core.domain.gpu.simulated.faults import Faults
from ds01_core.domain.gpu.simulated.health_faults import HealthFault, HealthLedger, SimEventSet
from ds01_core.domain.gpu.simulated.host import SimGpu, SimHost
from ds01_core.domain.gpu.simulated.values import NO_INSTANCE, SimHandle

#: Model name part -> (enforced power limit W, SM clock MHz, memory clock MHz).
MODEL_FIGURES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("H200", (700, 1980, 3201)),
    ("H100", (700, 1980, 2619)),
    ("A100", (400, 1410, 1593)),
    ("A30", (165, 1440, 1215)),
    ("V100", (300, 1530, 877)),
)
DEFAULT_FIGURES = (300, 1410, 1215)
#: GPUs before Ampere retire pages instead of remapping rows.
PRE_AMPERE = ("V100", "P100", "P40", "P4", "T4", "K80")
TEMPERATURE = 40
SLOWDOWN = 90
SHUTDOWN = 95
GPU_MAX = 92

#: New faults when they changed (a faults file's ``poll``), else None.
FaultsSource = Callable[[], dict[int, HealthFault] | None]
#: Throttle reasons that lower the SM clock (the simulated clock halves).
SLOWING = frozenset(THROTTLE_REASONS) - {"gpu_idle", "applications_clocks", "display_clocks"}


@attrs.define
class SimEventData:
    """Like ``c_nvmlEventData_t``: the device, the event type and its data (the XID)."""

    device: SimHandle
    eventType: int
    eventData: int
    gpuInstanceId: int = NO_INSTANCE
    computeInstanceId: int = NO_INSTANCE


def _figures(gpu: SimGpu) -> tuple[int, int, int]:
    return next((f for part, f in MODEL_FIGURES if part in gpu.model), DEFAULT_FIGURES)


def remaps_rows(gpu: SimGpu) -> bool:
    return not any(part in gpu.model for part in PRE_AMPERE)


class HealthCalls:
    """The health part of :class:`~ds01_core.domain.gpu.simulated.nvml.SimulatedNvml`."""

    NVMLError_Timeout = pynvml.NVMLError_Timeout
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_MEMORY_ERROR_TYPE_CORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_AGGREGATE_ECC = pynvml.NVML_AGGREGATE_ECC
    nvmlEventTypeXidCriticalError = pynvml.nvmlEventTypeXidCriticalError

    host: SimHost
    faults: Faults

    def _init_health(self, faults_source: FaultsSource | None) -> None:
        self.health = HealthLedger()
        self._faults_source = faults_source

    def _whole(self, handle: Any) -> SimGpu:  # SimulatedNvml's
        raise NotImplementedError

    # -- faults -----------------------------------------------------------------------------

    def _fault(self, index: int) -> HealthFault:
        return self.faults.health.get(index) or HealthFault()

    def _refresh(self) -> None:
        """Take in a changed faults file (asked on every call: only a change is parsed)."""
        if self._faults_source is not None:
            changed = self._faults_source()
            if changed is not None:
                self.faults.health = changed

    def _check_lost(self, index: int) -> None:
        """Raise as a GPU that fell off the bus does, if GPU ``index`` has."""
        self._refresh()
        if self._fault(index).fell_off_bus:
            raise pynvml.NVMLError_GpuIsLost()

    def _synced(self) -> HealthLedger:
        """The ledger, with what the faults say now taken in."""
        self._refresh()
        self.health.sync(self.faults.health, len(self.host.gpus))
        return self.health

    # -- sensors ----------------------------------------------------------------------------

    def nvmlDeviceGetTemperature(self, handle: SimHandle, sensor: int) -> int:
        gpu = self._whole(handle)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError_InvalidArgument()
        given = self._fault(gpu.index).temperature
        return round(given) if given is not None else TEMPERATURE

    def nvmlDeviceGetTemperatureThreshold(self, handle: SimHandle, threshold: int) -> int:
        self._whole(handle)
        known = {
            self.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: SHUTDOWN,
            self.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: SLOWDOWN,
            pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: GPU_MAX,
        }
        if threshold not in known:
            raise pynvml.NVMLError_NotSupported()
        return known[threshold]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        return _figures(gpu)[0] * 1000

    def nvmlDeviceGetClockInfo(self, handle: SimHandle, clock: int) -> int:
        gpu = self._whole(handle)
        _limit, sm, memory = _figures(gpu)
        if clock == self.NVML_CLOCK_MEM:
            return memory
        if clock not in (pynvml.NVML_CLOCK_GRAPHICS, self.NVML_CLOCK_SM):
            raise pynvml.NVMLError_NotSupported()
        slowed = SLOWING.intersection(self._fault(gpu.index).throttle)
        return sm // 2 if slowed else sm

    def nvmlDeviceGetMaxClockInfo(self, handle: SimHandle, clock: int) -> int:
        gpu = self._whole(handle)
        _limit, sm, memory = _figures(gpu)
        return memory if clock == self.NVML_CLOCK_MEM else sm

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimHandle) -> int:
        self._whole(handle)
        self.faults.calls["nvmlDeviceGetCurrentClocksEventReasons"] += 1
        if self.faults.old_driver:  # the call is new in driver 535
            raise pynvml.NVMLError_FunctionNotFound()
        return self.nvmlDeviceGetCurrentClocksThrottleReasons(handle)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        names = self._fault(gpu.index).throttle
        return sum(1 << bit for bit, name in enumerate(THROTTLE_REASONS) if name in names)

    def nvmlDeviceGetIndex(self, handle: SimHandle) -> int:
        return self._whole(handle).index

    # -- memory errors ------------------------------------------------------------------------

    def nvmlDeviceGetEccMode(self, handle: SimHandle) -> list[int]:
        self._whole(handle)
        return [1, 1]

    def nvmlDeviceGetTotalEccErrors(self, handle: SimHandle, error_type: int, counter: int) -> int:
        gpu = self._whole(handle)
        kinds = {
            self.NVML_MEMORY_ERROR_TYPE_CORRECTED: "ecc_corrected",
            self.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "ecc_uncorrected",
        }
        if error_type not in kinds or counter not in (
            self.NVML_VOLATILE_ECC,
            self.NVML_AGGREGATE_ECC,
        ):
            raise pynvml.NVMLError_InvalidArgument()
        found = self._synced().counter(gpu.index, kinds[error_type])
        return found.volatile if counter == self.NVML_VOLATILE_ECC else found.aggregate

    def nvmlDeviceGetRetiredPages(self, handle: SimHandle, cause: int) -> list[int]:
        gpu = self._whole(handle)
        if remaps_rows(gpu):
            raise pynvml.NVMLError_NotSupported()
        if cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS:
            return []
        pages = self._synced().counter(gpu.index, "ecc_uncorrected").aggregate
        return [0x1000 * (n + 1) for n in range(pages)]  # one page retired per double-bit error

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: SimHandle) -> int:
        gpu = self._whole(handle)
        if remaps_rows(gpu):
            raise pynvml.NVMLError_NotSupported()
        return int(self._fault(gpu.index).pending_retirement)

    def nvmlDeviceGetRemappedRows(self, handle: SimHandle) -> tuple[int, int, int, int]:
        gpu = self._whole(handle)
        if not remaps_rows(gpu):
            raise pynvml.NVMLError_NotSupported()
        fault = self._fault(gpu.index)
        uncorrectable = self._synced().counter(gpu.index, "ecc_uncorrected").aggregate
        return (0, uncorrectable, int(fault.pending_retirement), int(fault.remap_failure))

    # -- XID events ---------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> SimEventSet:
        events = SimEventSet()
        self.health.event_sets[id(events)] = events
        return events

    def nvmlDeviceRegisterEvents(self, handle: SimHandle, types: int, events: SimEventSet) -> None:
        gpu = self._whole(handle)
        if id(events) not in self.health.event_sets:
            raise pynvml.NVMLError_InvalidArgument()
        if types & self.nvmlEventTypeXidCriticalError:
            # only what is raised from now on reaches it, as on a real GPU
            events.cursors[gpu.index] = len(self.health.xid_log.get(gpu.index, []))

    def nvmlEventSetWait_v2(self, events: SimEventSet, timeoutms: int) -> SimEventData:
        if id(events) not in self.health.event_sets:
            raise pynvml.NVMLError_InvalidArgument()
        found = self._synced().next_xid(events)
        if found is None:  # the simulated driver never waits: nothing more will come
            raise pynvml.NVMLError_Timeout()
        index, code = found
        return SimEventData(SimHandle(index), self.nvmlEventTypeXidCriticalError, code)

    def nvmlEventSetFree(self, events: SimEventSet) -> None:
        """Free a set; freeing one that is not open is an error (a double free)."""
        if self.health.event_sets.pop(id(events), None) is None:
            raise pynvml.NVMLError_InvalidArgument()
