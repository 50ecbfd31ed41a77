"""Checks of the provider's GPU telemetry (sensors, error counters, XIDs) against NVML's answers.

So an admin with a GPU can see, read-only, what the health step will read: one ``telemetry``
check per GPU shows every reading the provider made, beside NVML's own temperature, thresholds
and power limit (compared: a temperature within a few degrees, as it moves between two reads;
the thresholds and limit exactly); an ``xid events`` check says the provider freed its event set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ds01_core.domain.gpu.health import GpuTelemetry
from ds01_core.services.gpu_selftest.answers import Answer, ask
from ds01_core.services.gpu_selftest.readonly import ReadOnlyNvml
from ds01_core.services.gpu_selftest.report import Check, judged

#: How far the provider's temperature may be from NVML's, read moments apart (°C).
TEMPERATURE_SLACK = 5.0


def read_sensors(nv: Any, handle: Any) -> dict[str, Answer]:
    """NVML's own temperature, slowdown and shutdown thresholds, and enforced power limit."""
    return {
        "temperature": ask(nv, "nvmlDeviceGetTemperature", handle, 0),  # NVML_TEMPERATURE_GPU
        "slowdown": ask(nv, "nvmlDeviceGetTemperatureThreshold", handle, 1),
        "shutdown": ask(nv, "nvmlDeviceGetTemperatureThreshold", handle, 0),
        "power limit": ask(nv, "nvmlDeviceGetEnforcedPowerLimit", handle),
    }


def check_telemetry(index: int, telemetry: Answer, sensors: Mapping[str, Answer]) -> Check:
    """GPU ``index``'s telemetry as the provider read it, beside NVML's sensors."""
    subject = f"GPU {index}"
    nvml = _sensors_text(sensors)
    if not telemetry.ok:
        failed = [f"the provider's telemetry: {telemetry.describe()}"]
        return judged("telemetry", subject, failed=failed, provider="-", nvml=nvml)
    reading = next((t for t in telemetry.value if t.index == index), None)
    if reading is None:
        return judged("telemetry", subject, differs=["the provider read no telemetry"], nvml=nvml)
    return judged(
        "telemetry",
        subject,
        differs=_differences(reading, sensors),
        provider=telemetry_text(reading),
        nvml=nvml,
    )


def _differences(reading: GpuTelemetry, sensors: Mapping[str, Answer]) -> list[str]:
    answered = {k: float(a.value) for k, a in sensors.items() if a.ok}
    if reading.fell_off_bus:  # NVML said so to one of its calls: its identity check names it
        return []
    differs = []
    temperature = answered.get("temperature")
    if temperature is not None:
        if reading.temperature_c is None:
            differs.append(f"temperature: the provider has none, NVML gives {temperature:g} °C")
        elif abs(reading.temperature_c - temperature) > TEMPERATURE_SLACK:
            differs.append(
                f"temperature: the provider's {reading.temperature_c:g} °C, "
                f"NVML's {temperature:g} °C"
            )
    for key, theirs, scale, unit in (
        ("slowdown", reading.slowdown_temperature_c, 1.0, "°C"),
        ("shutdown", reading.shutdown_temperature_c, 1.0, "°C"),
        ("power limit", reading.power_limit_watts, 1000.0, "W"),
    ):
        nvml = answered.get(key)
        if nvml is not None and (theirs is None or abs(theirs - nvml / scale) > 1e-6):
            shown = "none" if theirs is None else f"{theirs:g} {unit}"
            differs.append(f"{key}: the provider's {shown}, NVML's {nvml / scale:g} {unit}")
    return differs


def _sensors_text(sensors: Mapping[str, Answer]) -> str:
    def shown(key: str, scale: float = 1.0, unit: str = "°C") -> str:
        answer = sensors[key]
        return answer.describe(lambda v: f"{float(v) / scale:g} {unit}")

    return (
        f"{shown('temperature')} (slowdown {shown('slowdown')}, shutdown {shown('shutdown')}); "
        f"power limit {shown('power limit', 1000.0, 'W')}"
    )


def _value(value: Any, unit: str = "", scale: float = 1.0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{float(value) / scale:g}{unit}"


def telemetry_text(t: GpuTelemetry) -> str:
    """Every reading in one line (``n/a``: the GPU does not give it)."""
    if t.fell_off_bus:
        return "fell off the bus (NVMLError_GpuIsLost)"
    xids = f"{t.xid_errors}" + (f" (last XID {t.last_xid})" if t.last_xid is not None else "")
    return "; ".join(
        (
            f"{_value(t.temperature_c, ' °C')} (slowdown {_value(t.slowdown_temperature_c, ' °C')}"
            f", shutdown {_value(t.shutdown_temperature_c, ' °C')})",
            f"{_value(t.power_watts, ' W')} of {_value(t.power_limit_watts, ' W')}",
            f"energy {_value(t.energy_joules, ' J')}",
            f"SM {_value(t.sm_clock_hz, ' MHz', 1e6)}, memory {_value(t.memory_clock_hz, ' MHz', 1e6)}",
            f"throttle {', '.join(t.throttle_reasons) or 'none'}",
            f"ECC uncorrected {_value(t.ecc_volatile_uncorrected)} (aggregate "
            f"{_value(t.ecc_aggregate_uncorrected)}), corrected {_value(t.ecc_volatile_corrected)}"
            f" (aggregate {_value(t.ecc_aggregate_corrected)})",
            f"retired pages {_value(t.retired_pages_single_bit)}/"
            f"{_value(t.retired_pages_double_bit)} pending {_value(t.retired_pages_pending)}",
            f"remapped rows {_value(t.remapped_rows_correctable)}/"
            f"{_value(t.remapped_rows_uncorrectable)} pending {_value(t.remapped_rows_pending)} "
            f"failed {_value(t.remapped_rows_failed)}",
            f"XIDs {xids}",
        )
    )


def check_event_sets(nv: ReadOnlyNvml) -> Check | None:
    """Every XID event set the provider created is freed once it closed; None when none was."""
    created = sum(1 for c in nv.calls if (c.name, c.outcome) == ("nvmlEventSetCreate", "ok"))
    freed = sum(1 for c in nv.calls if (c.name, c.outcome) == ("nvmlEventSetFree", "ok"))
    if not created:
        return None
    differs = [f"{created - freed} XID event sets still open"] if freed < created else []
    return judged(
        "xid events",
        "host",
        differs=differs,
        provider="-",
        nvml=f"{created} created, {freed} freed",
    )
