"""Whole-GPU utilisation averaged over the cycle, from the driver's samples where it keeps them.

``nvmlDeviceGetUtilizationRates`` is one instantaneous reading: a job that computes in bursts
can read 0 % at the moment a cycle looks. The driver keeps a buffer of timestamped samples
(``nvmlDeviceGetSamples``); the mean of those newer than the last one seen covers the time since
the last cycle. Where the call is not supported (old drivers, some boards) or gives no new
sample, the instantaneous reading stands in. GPUs in MIG mode give neither (GPM covers them).
"""

from __future__ import annotations

import logging
from typing import Any

from ds01_core.domain.gpu.nvml.session import NvmlSession

log = logging.getLogger(__name__)

#: ``nvmlValueType_t`` -> the ``c_nvmlValue_t`` field holding a sample's value.
VALUE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


class UtilizationReader:
    """Per GPU: the last sample timestamp seen, and whether the driver samples it at all."""

    def __init__(self, session: NvmlSession):
        self._session = session
        self._nvml = session.nvml
        self._since: dict[int, int] = {}  # GPU index -> timestamp (µs) of the last sample used
        self._unsampled: set[int] = set()  # GPUs whose driver does not support the call

    def read(self, index: int, handle: Any) -> float | None:
        """Percent busy since the last call (mean of the new samples), else right now; None
        where the GPU gives no utilisation."""
        averaged = self._averaged(index, handle)
        if averaged is not None:
            return averaged
        nv = self._nvml
        util = self._session.metric("utilisation", nv.nvmlDeviceGetUtilizationRates, handle)
        return float(util.gpu) if util is not None else None

    def _averaged(self, index: int, handle: Any) -> float | None:
        nv = self._nvml
        kind = getattr(nv, "NVML_GPU_UTILIZATION_SAMPLES", None)
        if kind is None or not hasattr(nv, "nvmlDeviceGetSamples") or index in self._unsampled:
            return None
        try:
            value_type, samples = nv.nvmlDeviceGetSamples(handle, kind, self._since.get(index, 0))
        except nv.NVMLError as exc:
            if isinstance(exc, nv.NVMLError_GpuIsLost):
                raise
            if isinstance(exc, (nv.NVMLError_NotSupported, nv.NVMLError_FunctionNotFound)):
                log.debug("GPU %d: no utilisation samples (%s): instantaneous readings", index, exc)
                self._unsampled.add(index)
            else:  # NotFound: no sample since the last one seen
                log.debug("GPU %d: no new utilisation sample (%s)", index, exc)
            return None
        field = VALUE_FIELDS.get(int(value_type))
        if not samples or field is None:
            return None
        self._since[index] = max(int(s.timeStamp) for s in samples)
        return sum(float(getattr(s.sampleValue, field)) for s in samples) / len(samples)
