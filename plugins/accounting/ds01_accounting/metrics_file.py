"""The accounting totals the Prometheus exporter serves, written as a small telemetry file.

Plugins may not import each other, so the accounting plugin does not call the exporter: after
each cycle it writes energy and CO₂ per user since records began, and the grid's carbon
intensity now, to ``<paths.runtime_dir>/telemetry/accounting.json`` with the core's telemetry
writer (atomically, 0600: the file names users). The ``prometheus`` plugin reads it at scrape
time as ``ds01_user_energy_joules_total``, ``ds01_user_co2_grams_total`` and
``ds01_carbon_intensity_grams_per_kwh`` (docs/metrics.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from ds01_core.api import TelemetryRegistry, write_telemetry

log = logging.getLogger(__name__)

#: the telemetry file's process name: ``<runtime_dir>/telemetry/accounting.json``
PROCESS = "accounting"
ENERGY = "ds01_user_energy_joules_total"
CO2 = "ds01_user_co2_grams_total"
INTENSITY = "ds01_carbon_intensity_grams_per_kwh"


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value) and value >= 0


def _intensity_now(runtime: Any) -> float | None:
    """The carbon worker's current intensity (gCO₂/kWh), None when it cannot say; asked only
    when the caller did not pass one, and never fatal to the cycle."""
    try:
        from ds01_accounting.carbon import intensity_now  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        value = intensity_now(runtime)
    except Exception as exc:  # a provider's failure must not cost the cycle its metrics
        log.warning("carbon intensity unavailable for the exporter: %s", exc)
        return None
    grams = getattr(value, "grams_per_kwh", None)
    return float(grams) if isinstance(grams, int | float) else None


def registry(
    totals: Mapping[str, tuple[float, float | None]], intensity: float | None
) -> TelemetryRegistry:
    """The counters and the gauge for ``totals`` (user → (joules, grams of CO₂ or None)).

    A user's CO₂ is left out while unknown (no intensity yet), rather than written as 0: a
    counter that later jumps would read as CO₂ emitted in that moment."""
    reg = TelemetryRegistry()
    energy = reg.counter(
        ENERGY, "GPU energy attributed to the user since records began.", ("user",)
    )
    co2 = reg.counter(CO2, "CO2 of the user's GPU energy since records began.", ("user",))
    for user, (joules, grams) in sorted(totals.items()):
        if _finite(joules):
            energy.inc(user, amount=float(joules))
        if _finite(grams):
            co2.inc(user, amount=float(grams))
    gauge = reg.gauge(INTENSITY, "The grid's carbon intensity now (gCO2/kWh).")
    if _finite(intensity):
        gauge.set(value=float(intensity))
    return reg


def publish(
    runtime: Any,
    totals: Mapping[str, tuple[float, float | None]],
    intensity: float | None = None,
) -> None:
    """Write ``totals`` (user → (energy in joules, CO₂ in grams or None)) and the carbon
    intensity (asked from :mod:`ds01_accounting.carbon` when not given) for the exporter.

    An unwritable runtime directory is logged, never raised: the metrics are a view, and the
    usage records are already safe in the state store."""
    if intensity is None:
        intensity = _intensity_now(runtime)
    runtime_dir = Path(str(runtime.config.paths.runtime_dir))
    try:
        write_telemetry(runtime_dir, PROCESS, registry(totals, intensity))
    except OSError as exc:
        log.warning("could not write the accounting metrics under %s: %s", runtime_dir, exc)
