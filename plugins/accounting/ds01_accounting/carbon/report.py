"""``ds01 carbon report``'s figures: energy and CO₂ per user or group from the usage records.

The CO₂ of a record is what the accounting cycle computed with the intensity in force when the
energy was drawn (``co2_grams``); this only adds them up. Energy whose intensity was unknown
(no source configured then) is counted apart, so that a total never silently includes zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

JOULES_PER_KWH = 3_600_000.0


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def _figures(energy_j: float, co2_g: float, unknown_j: float, records: int) -> dict[str, Any]:
    known_kwh = (energy_j - unknown_j) / JOULES_PER_KWH
    return {
        "records": records,
        "energy_kwh": round(energy_j / JOULES_PER_KWH, 6),
        "co2_kg": round(co2_g / 1000.0, 6),
        "grams_per_kwh": round(co2_g / known_kwh, 3) if known_kwh > 0 else None,
        "energy_without_intensity_kwh": round(unknown_j / JOULES_PER_KWH, 6),
    }


def aggregate(rows: Iterable[Any], by: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One line per user (or group; no group: ``-``), largest CO₂ first, and the total."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        key = _get(row, by) or "-"
        energy = float(_get(row, "energy_joules") or 0.0)
        co2 = _get(row, "co2_grams")
        totals = groups.setdefault(str(key), [0.0, 0.0, 0.0, 0.0])
        totals[0] += energy
        totals[3] += 1
        if co2 is None:
            totals[2] += energy
        else:
            totals[1] += float(co2)
    lines = [{by: key, **_figures(e, c, u, int(n))} for key, (e, c, u, n) in groups.items()]
    lines.sort(key=lambda line: (-line["co2_kg"], -line["energy_kwh"], line[by]))
    sums = [sum(values[i] for values in groups.values()) for i in range(4)]
    return lines, _figures(sums[0], sums[1], sums[2], int(sums[3]))
