"""Each whole GPU's sensors and error counters, read through NVML for the health step.

One :class:`~ds01_core.domain.gpu.health.GpuTelemetry` per GPU NVML counts (never per MIG
device: temperature, power, clocks and ECC belong to the board). Only getters are called, so
reading changes nothing on the GPU. A reading the GPU does not offer (``NotSupported``: retired
pages on Ampere, row remapping before it, ECC on boards without it) is None and never asked of
that GPU again; any other failure is None for that round, logged at debug. A GPU that is lost
(``NVMLError_GpuIsLost``, whether its handle or any reading says so) is ``fell_off_bus`` with
its other readings None, and the others are still read: nothing here raises.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from ds01_core.domain.gpu.health import THROTTLE_REASONS, GpuTelemetry
from ds01_core.domain.gpu.nvml.session import NvmlSession
from ds01_core.domain.gpu.nvml.slots import text
from ds01_core.domain.gpu.nvml.xid import Clock, XidEvents

log = logging.getLogger(__name__)

# NVML's ABI values (the C enums), so that a binding missing a name still reads the same.
TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU
THRESHOLD_SHUTDOWN = 0  # NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
THRESHOLD_SLOWDOWN = 1  # NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
CLOCK_SM = 1  # NVML_CLOCK_SM
CLOCK_MEM = 2  # NVML_CLOCK_MEM
ECC_CORRECTED = 0  # NVML_MEMORY_ERROR_TYPE_CORRECTED
ECC_UNCORRECTED = 1  # NVML_MEMORY_ERROR_TYPE_UNCORRECTED
ECC_VOLATILE = 0  # NVML_VOLATILE_ECC
ECC_AGGREGATE = 1  # NVML_AGGREGATE_ECC
RETIRED_SINGLE_BIT = 0  # NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
RETIRED_DOUBLE_BIT = 1  # NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR

#: The clock-event (throttle) call, and the name it had before driver 535.
CLOCK_EVENTS = "nvmlDeviceGetCurrentClocksEventReasons"
THROTTLE_REASONS_CALL = "nvmlDeviceGetCurrentClocksThrottleReasons"

#: Every NVML function :class:`TelemetryReader` may call (the self-test's allow-list has them).
READ_CALLS = (
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetClockInfo",
    CLOCK_EVENTS,
    THROTTLE_REASONS_CALL,
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRetiredPages",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetIndex",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
)


def throttle_names(mask: int) -> tuple[str, ...]:
    """The names of the reasons set in a clock-event bitmask (bit ``i`` is
    ``THROTTLE_REASONS[i]``, as NVML numbers them); bits ds01 has no name for are left out."""
    return tuple(name for bit, name in enumerate(THROTTLE_REASONS) if mask & (1 << bit))


def _scaled(value: Any, factor: float) -> float | None:
    return None if value is None else float(value) * factor


def _milli(value: Any) -> float | None:
    """mW -> W, mJ -> J (divided, so 241700 mW reads 241.7 W, not 241.70000000000002)."""
    return None if value is None else float(value) / 1000


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


class TelemetryReader:
    """Reads :class:`GpuTelemetry` for every GPU of a session, remembering what each does not
    support and the XIDs heard so far.

    :param clock: when an XID was heard (tests pass their own).
    """

    def __init__(self, session: NvmlSession, clock: Clock | None = None):
        self._session = session
        self._nv = session.nvml
        self._unsupported: dict[int, set[str]] = {}
        self._uuids: dict[int, str] = {}
        self._old_throttle_call = False  # the driver has no clock-event call: use throttle's
        self.xid = XidEvents(session, clock) if clock is not None else XidEvents(session)

    def read_all(self) -> list[GpuTelemetry]:
        """One reading per GPU NVML counts, in index order; never raises for one GPU."""
        session = self._session
        session.require_open()
        handles: dict[int, Any] = {}
        found: dict[int, GpuTelemetry] = {}
        for index in range(session.count):
            handle = session.handle(index)
            if handle is None:
                lost = isinstance(session.handle_error(index), self._nv.NVMLError_GpuIsLost)
                found[index] = self._unread(index, lost)
                continue
            handles[index] = handle
            self.xid.register(index, handle)
        self.xid.drain(handles)
        for index, handle in handles.items():
            found[index] = self._read_one(index, handle)
        return [self._with_xids(found[index]) for index in sorted(found)]

    def close(self) -> None:
        self.xid.close()

    # -- one GPU ------------------------------------------------------------------------------

    def _unread(self, index: int, lost: bool) -> GpuTelemetry:
        if lost:
            self.xid.forget(index)
        return GpuTelemetry(index=index, uuid=self._uuids.get(index, ""), fell_off_bus=lost)

    def _with_xids(self, reading: GpuTelemetry) -> GpuTelemetry:
        index = reading.index
        count = self.xid.counts.get(index, 0)
        if not count:
            return reading
        code, at = self.xid.last[index]
        recent = tuple(self.xid.recent.get(index, ()))
        return attrs.evolve(
            reading, xid_errors=count, last_xid=code, last_xid_at=at, recent_xids=recent
        )

    def _read_one(self, index: int, handle: Any) -> GpuTelemetry:
        try:
            reading = self._read(index, handle)
        except self._nv.NVMLError_GpuIsLost as exc:
            log.debug("GPU %d is lost (%s): fell off the bus", index, exc)
            self._session.forget(index)
            return self._unread(index, lost=True)
        except Exception as exc:  # a binding bug must not stop the other GPUs' readings
            log.warning("GPU %d: telemetry not read: %s", index, exc, exc_info=True)
            return self._unread(index, lost=False)
        self._session.answered(index)  # read after this cycle's listing: the later word
        return reading

    def _read(self, index: int, handle: Any) -> GpuTelemetry:
        ask = self._ask
        uuid = ask(index, "uuid", "nvmlDeviceGetUUID", handle)
        if uuid is not None:
            self._uuids[index] = text(uuid)
        ecc = {
            (kind, counter): _count(
                ask(
                    index,
                    f"ecc {kind}/{counter}",
                    "nvmlDeviceGetTotalEccErrors",
                    handle,
                    kind,
                    counter,
                )
            )
            for kind in (ECC_CORRECTED, ECC_UNCORRECTED)
            for counter in (ECC_VOLATILE, ECC_AGGREGATE)
        }
        remapped = ask(index, "remapped rows", "nvmlDeviceGetRemappedRows", handle)
        rows = tuple(remapped) if remapped is not None else (None, None, None, None)
        pending = ask(index, "retired pending", "nvmlDeviceGetRetiredPagesPendingStatus", handle)
        return GpuTelemetry(
            index=index,
            uuid=self._uuids.get(index, ""),
            temperature_c=_scaled(
                ask(index, "temperature", "nvmlDeviceGetTemperature", handle, TEMPERATURE_GPU), 1
            ),
            slowdown_temperature_c=self._threshold(index, handle, THRESHOLD_SLOWDOWN),
            shutdown_temperature_c=self._threshold(index, handle, THRESHOLD_SHUTDOWN),
            power_watts=_milli(ask(index, "power", "nvmlDeviceGetPowerUsage", handle)),
            power_limit_watts=_milli(
                ask(index, "power limit", "nvmlDeviceGetEnforcedPowerLimit", handle)
            ),
            energy_joules=_milli(
                ask(index, "energy", "nvmlDeviceGetTotalEnergyConsumption", handle)
            ),
            sm_clock_hz=_scaled(
                ask(index, "sm clock", "nvmlDeviceGetClockInfo", handle, CLOCK_SM), 1e6
            ),
            memory_clock_hz=_scaled(
                ask(index, "memory clock", "nvmlDeviceGetClockInfo", handle, CLOCK_MEM), 1e6
            ),
            throttle_reasons=self._throttle(index, handle),
            ecc_volatile_corrected=ecc[ECC_CORRECTED, ECC_VOLATILE],
            ecc_volatile_uncorrected=ecc[ECC_UNCORRECTED, ECC_VOLATILE],
            ecc_aggregate_corrected=ecc[ECC_CORRECTED, ECC_AGGREGATE],
            ecc_aggregate_uncorrected=ecc[ECC_UNCORRECTED, ECC_AGGREGATE],
            retired_pages_single_bit=self._retired(index, handle, RETIRED_SINGLE_BIT),
            retired_pages_double_bit=self._retired(index, handle, RETIRED_DOUBLE_BIT),
            retired_pages_pending=None if pending is None else bool(pending),
            remapped_rows_correctable=_count(rows[0]),
            remapped_rows_uncorrectable=_count(rows[1]),
            remapped_rows_pending=None if rows[2] is None else bool(rows[2]),
            remapped_rows_failed=None if rows[3] is None else bool(rows[3]),
        )

    def _threshold(self, index: int, handle: Any, which: int) -> float | None:
        name = "slowdown" if which == THRESHOLD_SLOWDOWN else "shutdown"
        value = self._ask(
            index, f"{name} temperature", "nvmlDeviceGetTemperatureThreshold", handle, which
        )
        return _scaled(value, 1)

    def _retired(self, index: int, handle: Any, cause: int) -> int | None:
        pages = self._ask(
            index, f"retired pages {cause}", "nvmlDeviceGetRetiredPages", handle, cause
        )
        return None if pages is None else len(pages)

    def _throttle(self, index: int, handle: Any) -> tuple[str, ...]:
        """The clock-event reasons now, from the call drivers since 535 have, or the older
        throttle-reasons call (once the new one is missing, for the session)."""
        if not self._old_throttle_call:
            mask = self._ask(index, "clock events", CLOCK_EVENTS, handle, missing_is_old=True)
            if not self._old_throttle_call:
                return throttle_names(int(mask)) if mask is not None else ()
        mask = self._ask(index, "throttle reasons", THROTTLE_REASONS_CALL, handle)
        return throttle_names(int(mask)) if mask is not None else ()

    def _ask(
        self, index: int, key: str, name: str, *args: Any, missing_is_old: bool = False
    ) -> Any:
        """``nvml.<name>(*args)``, or None: not supported (``key`` is then never asked of this
        GPU again), or failed this round. A lost GPU raises.

        ``missing_is_old``: a binding or driver without ``name`` is an old one (the caller falls
        back to the older call) rather than a GPU that does not support it.
        """
        skipped = self._unsupported.setdefault(index, set())
        if key in skipped:
            return None
        nv = self._nv
        fn = getattr(nv, name, None)
        try:
            if fn is None:
                raise nv.NVMLError_FunctionNotFound()
            return fn(*args)
        except nv.NVMLError as exc:
            if isinstance(exc, nv.NVMLError_GpuIsLost):
                raise
            if isinstance(exc, nv.NVMLError_FunctionNotFound) and missing_is_old:
                log.info(
                    "NVML: this driver has no %s (%s); using %s", name, exc, THROTTLE_REASONS_CALL
                )
                self._old_throttle_call = True
                return None
            if isinstance(exc, (nv.NVMLError_NotSupported, nv.NVMLError_FunctionNotFound)):
                log.debug("GPU %d: %s not supported (%s): not asked again", index, key, exc)
                skipped.add(key)
                return None
            log.debug("GPU %d: %s unavailable: %s", index, key, exc)
            return None
