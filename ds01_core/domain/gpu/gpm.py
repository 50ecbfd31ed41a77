"""MIG utilisation from NVML's GPU performance monitoring (GPM, Hopper and newer).

NVML reports no utilisation for a MIG device. Where the GPU supports GPM, the SM utilisation of
each GPU instance is the ``NVML_GPM_METRIC_SM_UTIL`` metric between two samples; ds01 keeps the
previous sample per instance, so each call reports the activity since the last one (the first
call per instance reports nothing). Any NVML error means "unknown" for that instance, never a
guess.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


class GpmSampler:
    """Previous GPM samples per (GPU index, GPU instance id), for one NVML session."""

    def __init__(self, nvml: Any):
        self._nvml = nvml
        self._supported: dict[int, bool] = {}
        self._previous: dict[tuple[int, int], Any] = {}

    def supported(self, index: int, handle: Any) -> bool:
        if index not in self._supported:
            nv = self._nvml
            try:
                self._supported[index] = bool(
                    nv.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice
                )
            except (nv.NVMLError, AttributeError) as exc:  # old driver/bindings: no GPM
                log.info("GPU %d: no GPM (%s): MIG activity falls back to processes", index, exc)
                self._supported[index] = False
        return self._supported[index]

    def sm_utilization(self, index: int, handle: Any, gpu_instance_id: int) -> float | None:
        """SM utilisation (percent) of one GPU instance since the last call, or None.

        Every sample is freed on every path: a sample whose read fails at once, the previous
        one once the metric is computed (or fails), all held ones on :meth:`close`.
        """
        nv = self._nvml
        key = (index, gpu_instance_id)
        try:
            sample = nv.nvmlGpmSampleAlloc()
        except nv.NVMLError as exc:
            log.debug("GPU %d.%d: GPM sample not allocated: %s", index, gpu_instance_id, exc)
            return None
        try:
            nv.nvmlGpmMigSampleGet(handle, gpu_instance_id, sample)
        except nv.NVMLError as exc:
            log.debug("GPU %d.%d: GPM sample failed: %s", index, gpu_instance_id, exc)
            self._free(sample)
            return None
        previous = self._previous.pop(key, None)
        self._previous[key] = sample
        if previous is None:
            return None
        try:
            request = nv.c_nvmlGpmMetricsGet_t()
            request.version = nv.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = 1
            request.sample1 = previous
            request.sample2 = sample
            request.metrics[0].metricId = nv.NVML_GPM_METRIC_SM_UTIL
            nv.nvmlGpmMetricsGet(request)
            metric = request.metrics[0]
            return float(metric.value) if metric.nvmlReturn == 0 else None
        except nv.NVMLError as exc:
            log.debug("GPU %d.%d: GPM metrics failed: %s", index, gpu_instance_id, exc)
            return None
        finally:
            self._free(previous)

    def forget(self, alive: Iterable[tuple[int, int]]) -> None:
        """Free the samples of instances that no longer exist (MIG re-partitioned)."""
        keep = set(alive)
        for key in [k for k in self._previous if k not in keep]:
            self._free(self._previous.pop(key))

    def close(self) -> None:
        """Free every sample held (before the NVML session ends)."""
        for key in list(self._previous):
            self._free(self._previous.pop(key))

    def _free(self, sample: Any) -> None:
        """Free one sample; a failure is logged, never raised (the others are still freed)."""
        try:
            self._nvml.nvmlGpmSampleFree(sample)
        except self._nvml.NVMLError as exc:
            log.debug("GPM sample free failed: %s", exc)
