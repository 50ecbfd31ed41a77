"""What a GPU's sensors and error counters say, and the health ds01 concludes from them.

Read once per cycle by the daemon's ``gpu-health`` step through the GPU provider (NVML on a
real server, the simulated host with injected faults elsewhere), kept in the cycle's report for
plugins (the Prometheus exporter reads it, never NVML), and stored for ``ds01 gpu health`` and
for allocation, which leaves a drained GPU out.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

HealthState = Literal["ok", "degraded", "unhealthy"]

#: Why a GPU is not ``ok``; each code is a bounded label value of the exporter's metrics.
REASON_CODES: tuple[str, ...] = (
    "ecc_uncorrected",  # uncorrected (double-bit) ECC errors since the driver loaded
    "xid",  # an XID error was reported recently (see ``gpu.health.xid_window``)
    "thermal",  # at or above the slowdown temperature, or thermally throttled
    "fell_off_bus",  # the GPU no longer answers (NVML_ERROR_GPU_IS_LOST)
    "row_remap_failure",  # a row could not be remapped: the GPU needs service
    "pending_retirement",  # retired pages or remapped rows wait for a GPU reset
    "read_failed",  # the provider could not read this GPU's state
)

#: Throttle reasons by name (``nvmlClocksEventReason*`` / ``nvmlClocksThrottleReason*``).
THROTTLE_REASONS: tuple[str, ...] = (
    "gpu_idle",
    "applications_clocks",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal",
    "hw_thermal",
    "hw_power_brake",
    "display_clocks",
)


@attrs.frozen
class GpuTelemetry:
    """One GPU's readings in one cycle; ``None`` where the driver could not or would not say.

    Units are base units: degrees Celsius, watts, joules, hertz. ECC counters are NVML's
    (volatile: since the driver loaded; aggregate: the GPU's lifetime). ``xid_errors`` counts
    the XID events seen since the provider opened (a counter), ``last_xid`` the most recent
    code and ``last_xid_at`` when it was seen.
    """

    index: int
    uuid: str
    temperature_c: float | None = None
    slowdown_temperature_c: float | None = None
    shutdown_temperature_c: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    energy_joules: float | None = None
    sm_clock_hz: float | None = None
    memory_clock_hz: float | None = None
    throttle_reasons: tuple[str, ...] = ()
    ecc_volatile_corrected: int | None = None
    ecc_volatile_uncorrected: int | None = None
    ecc_aggregate_corrected: int | None = None
    ecc_aggregate_uncorrected: int | None = None
    retired_pages_single_bit: int | None = None
    retired_pages_double_bit: int | None = None
    retired_pages_pending: bool | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failed: bool | None = None
    xid_errors: int = 0
    last_xid: int | None = None
    last_xid_at: dt.datetime | None = None
    fell_off_bus: bool = False


@attrs.frozen
class HealthReason:
    """One reason a GPU is not healthy: a code from :data:`REASON_CODES` and words for people."""

    code: str
    detail: str


@attrs.frozen
class GpuHealth:
    """A GPU's health as ds01 concluded it in the last cycle.

    ``state`` is ``ok``, ``degraded`` (works, but someone should look) or ``unhealthy`` (should
    not take new work); ``since`` is when it entered that state; ``drained`` says that
    allocation leaves it out (configuration decides which states drain).
    """

    index: int
    uuid: str
    state: HealthState
    reasons: tuple[HealthReason, ...] = ()
    since: dt.datetime | None = None
    drained: bool = False
    telemetry: GpuTelemetry | None = None
