"""Energy and CO₂ per user and the grid's carbon intensity, from the accounting plugin's file.

The accounting plugin (``ds01-accounting``) writes its totals after each cycle to
``<paths.runtime_dir>/telemetry/accounting.json`` (process ``accounting``); the exporter turns
that snapshot into three families at scrape time. Without the plugin there is no file and no
family. Users are bounded by the file (the core's telemetry keeps at most 500 label sets) and
again here (:data:`MAX_USERS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

#: the process name the accounting plugin writes its telemetry file under
PROCESS = "accounting"
COUNTERS = {
    "ds01_user_energy_joules_total": "GPU energy attributed to the user since records began.",
    "ds01_user_co2_grams_total": "CO2 of the user's GPU energy since records began (grams).",
}
INTENSITY = "ds01_carbon_intensity_grams_per_kwh"
MAX_USERS = 500


def accounting_families(snapshots: Iterable[Any]) -> list[Metric]:
    """The three families from the newest ``accounting`` snapshot; [] when there is none."""
    found = [s for s in snapshots if s.process == PROCESS]
    if not found:
        return []
    snap = max(found, key=lambda s: s.written)
    families: list[Metric] = []
    for name, doc in COUNTERS.items():
        family = CounterMetricFamily(name, doc, labels=["user"])
        counter = snap.counters.get(name)
        if counter is not None and counter.labels == ("user",):
            for (user,), value in sorted(counter.values.items())[:MAX_USERS]:
                family.add_metric([user], value)
        families.append(family)
    gauge = GaugeMetricFamily(INTENSITY, "The grid's carbon intensity now (gCO2 per kWh).")
    intensity = snap.gauges.get(INTENSITY)
    if intensity is not None and () in intensity.values:
        gauge.add_metric([], intensity.values[()])
    families.append(gauge)
    return families
