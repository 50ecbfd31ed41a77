"""One NVML session: the library loaded, its GPU handles, and what a failed read means.

Every read of NVML goes through here: :meth:`NvmlSession.guarded` (a whole GPU: a lost or
unreadable one is logged once per outage and left out) and :meth:`NvmlSession.metric` (one
reading: ``None`` when NVML cannot give it; a lost GPU still raises, so the whole GPU is left
out). The provider and the MIG reader decide what the readings mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ds01_core.domain.gpu.base import GpuProviderError

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
        self._unreadable: set[int] = set()
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
            self._report_unreadable(index, exc)
            return None
        self._handles[index] = handle
        return handle

    def guarded(self, index: int, read: Callable[[int, Any], T]) -> T | None:
        """``read(index, handle)``, or None (logged) when the GPU is lost or unreadable."""
        handle = self.handle(index)
        if handle is None:
            return None
        try:
            result = read(index, handle)
        except self.nvml.NVMLError as exc:
            if isinstance(exc, self.nvml.NVMLError_GpuIsLost):
                self._handles.pop(index, None)
            self._report_unreadable(index, exc)
            return None
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
