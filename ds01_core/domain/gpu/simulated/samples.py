"""The simulated host's ``nvmlDeviceGetSamples``: timestamped GPU-utilisation samples.

The samples are those a driver keeps in its ring buffer, with a switch for drivers or boards
that do not support the call. Real NVML answers the samples newer than the timestamp given (microseconds), with their value
type; ``NotFound`` when there is none newer; ``NotSupported`` on a GPU in MIG mode and on boards
without sampling. Tests record samples per GPU (:meth:`UtilizationSamples.record`); a GPU with
none recorded answers one sample of its current utilisation, stamped now.
"""

from __future__ import annotations

from typing import Any

import attrs
import pynvml


@attrs.define
class UtilizationSamples:
    """The GPU-utilisation samples per GPU and whether the call is supported.

    :ivar unsupported: every ``nvmlDeviceGetSamples`` call answers ``NotSupported``.
    :ivar recorded: GPU index -> ``(timestamp in µs, percent)`` in time order.
    :ivar calls: how often ``nvmlDeviceGetSamples`` was called.
    """

    unsupported: bool = False
    recorded: dict[int, list[tuple[int, int]]] = attrs.Factory(dict)
    calls: int = 0

    def record(self, gpu: int, timestamp_us: int, percent: int) -> None:
        """Add one sample to GPU ``gpu``'s buffer (timestamps must grow)."""
        self.recorded.setdefault(gpu, []).append((timestamp_us, percent))

    def answer(
        self,
        gpu: int,
        utilization: int | None,
        sampling_type: int,
        since_us: int,
        now_us: int,
    ) -> tuple[int, list[Any]]:
        """What ``nvmlDeviceGetSamples`` returns for a whole GPU (``utilization`` None: the GPU
        gives none, as in MIG mode)."""
        self.calls += 1
        if self.unsupported or utilization is None:
            raise pynvml.NVMLError_NotSupported()
        if sampling_type != pynvml.NVML_GPU_UTILIZATION_SAMPLES:
            raise pynvml.NVMLError_NotSupported()  # the only kind simulated
        series = self.recorded.get(gpu, [(now_us, int(utilization))])
        newer = [(stamp, value) for stamp, value in series if stamp > since_us]
        if not newer:
            raise pynvml.NVMLError_NotFound()
        samples = [
            pynvml.c_nvmlSample_t(timeStamp=stamp, sampleValue=pynvml.c_nvmlValue_t(uiVal=value))
            for stamp, value in newer
        ]
        return pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, samples
