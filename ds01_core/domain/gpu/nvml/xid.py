"""XID errors of each GPU, heard through one NVML event set and drained on every telemetry read.

An XID is the driver's report of a GPU fault (79: fallen off the bus, 48: double-bit ECC, 63/64:
row remapping, …). NVML delivers them as events only to an event set registered *before* they
happen, so the set is created once per session (at the first read), each GPU is registered on
it once (``nvmlEventTypeXidCriticalError``), and every read drains it without waiting
(``nvmlEventSetWait_v2(set, 0)`` until ``NVMLError_Timeout``). What is kept is a counter per GPU
since the provider opened, and the last code with when it was heard (NVML's event data carries
no time). The set is freed when the provider closes.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from ds01_core.domain.gpu.nvml.session import NvmlSession

log = logging.getLogger(__name__)

#: ``nvmlEventTypeXidCriticalError``: NVML's ABI value, for bindings that lack the name.
XID_EVENT = 0x8
#: The most events one read takes from the set (a storm must not stall the daemon's cycle).
MAX_EVENTS_PER_READ = 10_000

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def handle_key(handle: Any) -> Any:
    """What identifies a device handle: the address behind a ctypes pointer (two pointer
    objects to one device are not ``==``), else the handle itself (the simulated host's)."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


class XidEvents:
    """The session's XID event set, and what it has delivered per GPU index."""

    def __init__(self, session: NvmlSession, clock: Clock = _utc_now):
        self._session = session
        self._nv = session.nvml
        self._clock = clock
        self._set: Any = None
        self._no_events = False  # this driver or binding has no event sets: never asked again
        self._registered: set[int] = set()
        self._refused: set[int] = set()  # GPUs that cannot report XIDs (NotSupported)
        self.counts: dict[int, int] = {}
        self.last: dict[int, tuple[int, dt.datetime]] = {}

    def _unsupported(self, exc: BaseException) -> bool:
        nv = self._nv
        return isinstance(
            exc, (AttributeError, nv.NVMLError_NotSupported, nv.NVMLError_FunctionNotFound)
        )

    def _event_set(self) -> Any:
        """The event set, created at the first read; None where the driver has none."""
        if self._set is not None or self._no_events:
            return self._set
        try:
            self._set = self._nv.nvmlEventSetCreate()
        except (self._nv.NVMLError, AttributeError) as exc:
            if self._unsupported(exc):
                self._no_events = True
                log.info("NVML: no event sets on this host (%s): XID errors are not counted", exc)
            else:  # tried again at the next read
                log.debug("NVML event set not created: %s", exc)
        return self._set

    def register(self, index: int, handle: Any) -> None:
        """Listen for GPU ``index``'s XIDs (once; again after :meth:`forget`)."""
        if index in self._registered or index in self._refused:
            return
        events = self._event_set()
        if events is None:
            return
        event_type = getattr(self._nv, "nvmlEventTypeXidCriticalError", XID_EVENT)
        try:
            self._nv.nvmlDeviceRegisterEvents(handle, event_type, events)
        except self._nv.NVMLError as exc:
            if isinstance(exc, self._nv.NVMLError_GpuIsLost):
                return  # the read that follows finds it lost
            if self._unsupported(exc):
                self._refused.add(index)
                log.info("GPU %d cannot report XID events (%s): not counted", index, exc)
            else:
                log.debug("GPU %d: XID events not registered: %s", index, exc)
            return
        self._registered.add(index)

    def forget(self, index: int) -> None:
        """GPU ``index`` is lost: register it again should it come back with a new handle."""
        self._registered.discard(index)

    def drain(self, handles: dict[int, Any]) -> None:
        """Take every event waiting in the set, without waiting for more; ``handles``: the
        GPUs read this round (an event names its device by handle)."""
        if self._set is None:
            return
        nv = self._nv
        by_key = {handle_key(h): i for i, h in handles.items()}
        for _ in range(MAX_EVENTS_PER_READ):
            try:
                data = nv.nvmlEventSetWait_v2(self._set, 0)
            except nv.NVMLError as exc:
                if not isinstance(exc, nv.NVMLError_Timeout):
                    log.debug("NVML event set: %s", exc)
                return
            event_type = int(getattr(data, "eventType", XID_EVENT))
            if not event_type & XID_EVENT:
                continue
            index = self._index_of(data.device, by_key)
            code = int(data.eventData)
            if index is None:
                log.warning("XID %d on a device NVML cannot name: not counted", code)
                continue
            log.warning("GPU %d reported XID %d", index, code)
            self.counts[index] = self.counts.get(index, 0) + 1
            self.last[index] = (code, self._clock())
        log.warning("NVML event set: over %d events in one read", MAX_EVENTS_PER_READ)

    def _index_of(self, device: Any, by_key: dict[Any, int]) -> int | None:
        found = by_key.get(handle_key(device))
        if found is not None:
            return found
        try:  # a handle this session did not cache (or another pointer to one it did)
            return int(self._nv.nvmlDeviceGetIndex(device))
        except (self._nv.NVMLError, AttributeError):
            return None

    def close(self) -> None:
        """Free the event set (once), before NVML shuts down."""
        events, self._set = self._set, None
        self._registered.clear()
        if events is None:
            return
        try:
            self._nv.nvmlEventSetFree(events)
        except self._nv.NVMLError as exc:
            log.warning("NVML event set not freed: %s", exc)
