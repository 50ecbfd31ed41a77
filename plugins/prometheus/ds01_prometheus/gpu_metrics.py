"""The GPU families: each GPU's inventory, sensors, error counters and health, from one cycle.

Everything here comes from the cycle's report (``report.gpus``, ``report.health`` with its
telemetry); nothing reads NVML. Label values are bounded: the GPU's index, a throttle reason
from ``THROTTLE_REASONS``, a reason code from ``REASON_CODES``, fixed counter names.
"""

from __future__ import annotations

from collections.abc import Sequence

from ds01_core.api import Gpu, GpuHealth, GpuTelemetry
from ds01_prometheus.families import Families

#: the same tuples as ``ds01_core.domain.gpu.health`` (which a plugin may not import):
#: every throttle reason gets a series, 0 or 1, so that an alert on one resolves
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
REASON_CODES: tuple[str, ...] = (
    "ecc_uncorrected",
    "xid",
    "thermal",
    "fell_off_bus",
    "row_remap_failure",
    "pending_retirement",
    "read_failed",
)


def ratio(percent: float | None) -> float | None:
    """NVML's percent as a ratio 0..1 (None stays None: absent when unknown)."""
    return None if percent is None else max(0.0, min(1.0, percent / 100.0))


def flag(value: bool | None) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


def add_gpus(
    out: Families, gpus: Sequence[Gpu], health: Sequence[GpuHealth], available: bool
) -> None:
    """The GPU section of the catalogue: inventory, readings, health."""
    out.gauge(
        "ds01_gpus_available",
        "1 while ds01 can read the GPUs (0: NVML unavailable or released by an admin).",
    )(flag(available))
    info = out.gauge(
        "ds01_gpu_info",
        "One series per GPU: its UUID, model and MIG mode.",
        ("gpu", "uuid", "model", "mig"),
    )
    util = out.gauge("ds01_gpu_utilization_ratio", "GPU busy ratio, 0..1.", ("gpu",))
    used = out.gauge("ds01_gpu_memory_used_bytes", "GPU memory in use.", ("gpu",))
    total = out.gauge("ds01_gpu_memory_total_bytes", "GPU memory in all.", ("gpu",))
    for gpu in gpus:
        g = str(gpu.index)
        info(1, g, gpu.uuid, gpu.model, "true" if gpu.mig_enabled else "false")
        util(ratio(gpu.utilization), g)
        used(gpu.memory_used, g)
        total(gpu.memory_total, g)
    by_index = {h.index: h for h in health}
    readings: dict[int, tuple[GpuTelemetry, bool]] = {}
    for gpu in gpus:
        known = by_index.get(gpu.index)
        if known is not None and known.telemetry is not None:
            readings[gpu.index] = (known.telemetry, True)
        else:  # no health step: the listing's power and energy only
            listed = GpuTelemetry(
                gpu.index, gpu.uuid, power_watts=gpu.power_watts, energy_joules=gpu.energy_joules
            )
            readings[gpu.index] = (listed, False)
    for h in health:  # a GPU that fell off the bus may be missing from the listing
        if h.index not in readings and h.telemetry is not None:
            readings[h.index] = (h.telemetry, True)
    _add_telemetry(out, readings)
    _add_health(out, health)


def _add_telemetry(out: Families, readings: dict[int, tuple[GpuTelemetry, bool]]) -> None:
    """Each GPU's readings; throttle reasons, XIDs and the bus state only where the health step
    read them (``True``), since there an empty tuple or a zero means "none"."""
    temp = out.gauge("ds01_gpu_temperature_celsius", "GPU core temperature.", ("gpu",))
    slowdown = out.gauge(
        "ds01_gpu_slowdown_temperature_celsius",
        "Temperature at which the GPU slows itself down.",
        ("gpu",),
    )
    shutdown = out.gauge(
        "ds01_gpu_shutdown_temperature_celsius",
        "Temperature at which the GPU shuts itself down.",
        ("gpu",),
    )
    power = out.gauge("ds01_gpu_power_watts", "GPU power draw.", ("gpu",))
    power_limit = out.gauge("ds01_gpu_power_limit_watts", "GPU power limit.", ("gpu",))
    energy = out.counter(
        "ds01_gpu_energy_joules_total", "Energy the GPU used since the driver loaded.", ("gpu",)
    )
    clock = out.gauge("ds01_gpu_clock_hertz", "GPU clock (sm, memory).", ("gpu", "clock"))
    throttled = out.gauge(
        "ds01_gpu_throttled",
        "1 while the GPU's clocks are held down for that reason.",
        ("gpu", "reason"),
    )
    ecc = out.counter(
        "ds01_gpu_ecc_errors_total",
        "ECC errors (volatile: since the driver loaded; aggregate: the GPU's lifetime).",
        ("gpu", "counter", "type"),
    )
    retired = out.gauge(
        "ds01_gpu_retired_pages", "Retired memory pages, by cause.", ("gpu", "cause")
    )
    retired_pending = out.gauge(
        "ds01_gpu_retired_pages_pending", "1 while retired pages wait for a GPU reset.", ("gpu",)
    )
    remapped = out.gauge(
        "ds01_gpu_remapped_rows", "Remapped memory rows, by type.", ("gpu", "type")
    )
    remap_pending = out.gauge(
        "ds01_gpu_remapped_rows_pending", "1 while remapped rows wait for a GPU reset.", ("gpu",)
    )
    remap_failed = out.gauge(
        "ds01_gpu_remapped_rows_failed", "1 when a row could not be remapped.", ("gpu",)
    )
    xids = out.counter(
        "ds01_gpu_xid_errors_total", "XID errors seen since ds01d opened the GPUs.", ("gpu",)
    )
    last_xid = out.gauge("ds01_gpu_last_xid", "The most recent XID error's code.", ("gpu",))
    fell_off = out.gauge("ds01_gpu_fell_off_bus", "1 when the GPU no longer answers.", ("gpu",))
    for index in sorted(readings):
        t, from_health = readings[index]
        g = str(index)
        temp(t.temperature_c, g)
        slowdown(t.slowdown_temperature_c, g)
        shutdown(t.shutdown_temperature_c, g)
        power(t.power_watts, g)
        power_limit(t.power_limit_watts, g)
        energy(t.energy_joules, g)
        clock(t.sm_clock_hz, g, "sm")
        clock(t.memory_clock_hz, g, "memory")
        if from_health:
            for reason in THROTTLE_REASONS:
                throttled(1 if reason in t.throttle_reasons else 0, g, reason)
            xids(t.xid_errors, g)
            fell_off(flag(t.fell_off_bus), g)
        for counter, kind, value in (
            ("volatile", "corrected", t.ecc_volatile_corrected),
            ("volatile", "uncorrected", t.ecc_volatile_uncorrected),
            ("aggregate", "corrected", t.ecc_aggregate_corrected),
            ("aggregate", "uncorrected", t.ecc_aggregate_uncorrected),
        ):
            ecc(value, g, counter, kind)
        retired(t.retired_pages_single_bit, g, "single_bit")
        retired(t.retired_pages_double_bit, g, "double_bit")
        retired_pending(flag(t.retired_pages_pending), g)
        remapped(t.remapped_rows_correctable, g, "correctable")
        remapped(t.remapped_rows_uncorrectable, g, "uncorrectable")
        remap_pending(flag(t.remapped_rows_pending), g)
        remap_failed(flag(t.remapped_rows_failed), g)
        last_xid(t.last_xid, g)


def _add_health(out: Families, health: Sequence[GpuHealth]) -> None:
    healthy = out.gauge("ds01_gpu_healthy", "1 while ds01 judges the GPU ok.", ("gpu",))
    problem = out.gauge(
        "ds01_gpu_health_problem",
        "1 while that reason makes the GPU not ok, 0 once it clears.",
        ("gpu", "reason"),
    )
    drained = out.gauge(
        "ds01_gpu_drained", "1 while allocation leaves the GPU out (drained).", ("gpu",)
    )
    for h in sorted(health, key=lambda h: h.index):
        g = str(h.index)
        healthy(1 if h.state == "ok" else 0, g)
        drained(flag(h.drained), g)
        codes = {r.code for r in h.reasons}
        for code in (*REASON_CODES, *sorted(codes - set(REASON_CODES))):
            problem(1 if code in codes else 0, g, code)
