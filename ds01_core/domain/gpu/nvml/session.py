"""One NVML session: the library loaded, its GPU handles, and what a failed read means.

Every read of NVML goes through here: :meth:`NvmlSession.guarded` (a whole GPU: a lost or
unreadable one is logged once per outage and left out) and :meth:`NvmlSession.metric` (one
reading: ``None`` when NVML cannot give it; a lost GPU still raises, so the whole GPU is left
out). The provider and the MIG reader decide what the readings mean.

Reads that matter for the lifecycle (a GPU left out, a process query that failed) also set the
GPU's health (:meth:`NvmlSession.health`): ``"ok"``, or ``"degraded: <call>: <error>"`` until
the read succeeds again, or, for a call that failed because the GPU was lost, until the GPU
answers any later read (:meth:`NvmlSession.answered`: one daemon cycle lists the GPUs before it
reads their sensors, and a GPU back between the two is back, not failing). Calls that differ by driver generation (the ``_v3`` process query, the
``_v2`` memory query) fall back to the older call once, for the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ds01_core.domain.gpu.base import HEALTH_OK, GpuProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _import_pynvml() -> Any:
    try:
        # imported when a provider opens, not at load: tests swap in a fake via sys.modules
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise GpuProviderError(
            f"NVML did not load: the pynvml module is missing ({exc}); install nvidia-ml-py"
        ) from exc
    return pynvml


class NvmlSession:
    """NVML initialised once, with the cached handle of each GPU, until :meth:`close`.

    :param nvml: the ``pynvml`` module or a stand-in (the simulated host, a test fake).
    :param name: the provider's name, for errors.
    :raises GpuProviderError: when NVML does not load (no driver, no library).
    """

    def __init__(self, nvml: Any | None, name: str):
        self.nvml = nvml if nvml is not None else _import_pynvml()
        self.name = name
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise GpuProviderError(f"NVML did not load: {exc}") from exc
        self._open = True
        try:
            self.count = int(self.nvml.nvmlDeviceGetCount())
        except self.nvml.NVMLError as exc:
            self.close()
            raise GpuProviderError(f"NVML loaded but could not count the GPUs: {exc}") from exc
        self._handles: dict[int, Any] = {}
        self._handle_errors: dict[int, Exception] = {}  # why a handle query last failed
        self._unreadable: set[int] = set()
        self._degraded: dict[int, dict[str, str]] = {}  # GPU index -> what failed -> message
        self._lost_calls: dict[int, set[str]] = {}  # the failures that said the GPU was lost
        self._old_process_call = False  # the driver has no _v3 process query: use _v2
        self._old_memory_call = False  # the driver has no _v2 memory query: use v1
        for index in range(self.count):
            self.handle(index)

    def close(self) -> None:
        """End the NVML session (once; later calls do nothing)."""
        if not getattr(self, "_open", False):
            return
        self._open = False
        self._handles = {}
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as exc:
            log.warning("NVML shutdown failed: %s", exc)

    def require_open(self) -> None:
        if not self._open:
            raise GpuProviderError(f"the {self.name} GPU provider is closed")

    def handle(self, index: int) -> Any | None:
        """The cached handle of GPU ``index``; fetched again after a failure."""
        handle = self._handles.get(index)
        if handle is not None:
            return handle
        try:
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
        except self.nvml.NVMLError as exc:
            self._handle_errors[index] = exc
            self._report_unreadable(index, exc)
            self.degrade(index, "nvmlDeviceGetHandleByIndex", str(exc), lost=self._is_lost(exc))
            return None
        self._handle_errors.pop(index, None)
        self.recover(index, "nvmlDeviceGetHandleByIndex")
        self._handles[index] = handle
        return handle

    def handle_error(self, index: int) -> Exception | None:
        """Why the last handle query of GPU ``index`` failed (None: it did not)."""
        return self._handle_errors.get(index)

    def forget(self, index: int) -> None:
        """Drop GPU ``index``'s cached handle (it is lost): the next read asks NVML again."""
        self._handles.pop(index, None)

    def guarded(
        self, index: int, read: Callable[[int, Any], T], what: str = "reading the GPU"
    ) -> T | None:
        """``read(index, handle)``, or None (logged; the GPU's health says ``what`` failed)
        when the GPU is lost or unreadable."""
        handle = self.handle(index)
        if handle is None:  # its health names the failed handle query
            return None
        try:
            result = read(index, handle)
        except self.nvml.NVMLError as exc:
            if isinstance(exc, self.nvml.NVMLError_GpuIsLost):
                self._handles.pop(index, None)
            self._report_unreadable(index, exc)
            self.degrade(index, what, str(exc), lost=self._is_lost(exc))
            return None
        self.recover(index, what)
        if index in self._unreadable:
            self._unreadable.discard(index)
            log.info("GPU %d is readable again", index)
        return result

    def _report_unreadable(self, index: int, exc: Exception) -> None:
        """Log once per outage (the daemon lists GPUs every cycle), then quietly."""
        lost = isinstance(exc, self.nvml.NVMLError_GpuIsLost)
        what = "is lost" if lost else "could not be read"
        if index in self._unreadable:
            log.debug("GPU %d %s (%s): left out", index, what, exc)
            return
        self._unreadable.add(index)
        log.log(
            logging.ERROR if lost else logging.WARNING, "GPU %d %s (%s): left out", index, what, exc
        )

    def metric(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """One reading, or None when NVML cannot give it; a lost GPU still raises."""
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            if isinstance(exc, self.nvml.NVMLError_GpuIsLost):
                raise
            log.debug("%s unavailable: %s", what, exc)
            return None

    # -- health: what the last reads of each GPU said ---------------------------------------

    def _is_lost(self, exc: Exception) -> bool:
        return isinstance(exc, self.nvml.NVMLError_GpuIsLost)

    def degrade(self, index: int, call: str, error: str, *, lost: bool = False) -> None:
        """Record that ``call`` failed on GPU ``index`` (until :meth:`recover`; a failure
        because the GPU was ``lost`` also until :meth:`answered`)."""
        self._degraded.setdefault(index, {})[call] = error
        if lost:
            self._lost_calls.setdefault(index, set()).add(call)
        else:
            self._lost_calls.get(index, set()).discard(call)

    def recover(self, index: int, call: str) -> None:
        self._degraded.get(index, {}).pop(call, None)
        self._lost_calls.get(index, set()).discard(call)

    def answered(self, index: int) -> None:
        """GPU ``index`` answered a read: the failures that said it was lost are out of date."""
        for call in self._lost_calls.pop(index, set()):
            self._degraded.get(index, {}).pop(call, None)

    def health(self) -> dict[int, str]:
        """GPU index -> ``"ok"``, or ``"degraded: <call>: <error>"`` (each failing call)."""
        result = {}
        for index in range(self.count):
            failing = self._degraded.get(index)
            if failing:
                result[index] = "degraded: " + "; ".join(f"{c}: {e}" for c, e in failing.items())
            else:
                result[index] = HEALTH_OK
        return result

    # -- calls that differ by driver generation ---------------------------------------------

    def compute_processes(self, handle: Any) -> list[Any]:
        """The compute processes on one device, from the ``_v3`` query, or ``_v2`` on drivers
        without it (pynvml then raises ``NVMLLibraryMismatchError``, not an NVMLError).

        :raises NVMLError: the processes cannot be read: unknown, never "none".
        """
        nv = self.nvml
        if not self._old_process_call:
            missing = tuple(
                e
                for e in (
                    getattr(nv, "NVMLLibraryMismatchError", None),
                    nv.NVMLError_FunctionNotFound,
                )
                if e is not None
            )
            try:
                return list(nv.nvmlDeviceGetComputeRunningProcesses(handle))
            except missing as exc:
                log.info(
                    "NVML: this driver has no nvmlDeviceGetComputeRunningProcesses_v3 (%s); "
                    "using the _v2 call",
                    exc,
                )
                self._old_process_call = True
        return list(nv.nvmlDeviceGetComputeRunningProcesses_v2(handle))

    def memory(self, handle: Any) -> Any | None:
        """Memory of one device from the ``_v2`` query where the driver has it (its ``used``
        leaves out what the driver reserves), else the v1 query; None when neither answers."""
        nv = self.nvml
        version = getattr(nv, "nvmlMemory_v2", None)
        if version is not None and not self._old_memory_call:
            try:
                return nv.nvmlDeviceGetMemoryInfo(handle, version=version)
            except nv.NVMLError as exc:
                if isinstance(exc, nv.NVMLError_GpuIsLost):
                    raise
                if isinstance(exc, nv.NVMLError_FunctionNotFound):
                    log.info(
                        "NVML: this driver has no nvmlDeviceGetMemoryInfo_v2: memory used "
                        "includes what the driver reserves"
                    )
                    self._old_memory_call = True
                else:
                    log.debug("memory (v2) unavailable, trying v1: %s", exc)
        return self.metric("memory", nv.nvmlDeviceGetMemoryInfo, handle)
