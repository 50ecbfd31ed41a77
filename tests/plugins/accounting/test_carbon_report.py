"""``ds01 carbon report``'s figures: energy and CO₂ summed per user or group, the mean
intensity weighted by energy, and energy drawn while no intensity was known counted apart."""

from __future__ import annotations

from typing import Any

import pytest

from ds01_accounting.carbon.report import aggregate

KWH = 3_600_000.0


def row(user: str, group: str | None, kwh: float, grams: float | None) -> dict[str, Any]:
    return {"user": user, "group": group, "energy_joules": kwh * KWH, "co2_grams": grams}


def test_sums_per_user_largest_first_and_the_weighted_mean() -> None:
    rows = [
        row("ds01ta", "phd", 2.0, 800.0),  # 400 g/kWh
        row("ds01ta", "phd", 1.0, 100.0),  # 100 g/kWh
        row("ds01tb", "staff", 0.5, 150.0),
        row("ds01tb", "staff", 0.25, None),  # drawn while no intensity was known
    ]
    lines, total = aggregate(rows, "user")
    assert [line["user"] for line in lines] == ["ds01ta", "ds01tb"]
    ta, tb = lines
    assert ta["records"] == 2 and ta["energy_kwh"] == 3.0 and ta["co2_kg"] == 0.9
    assert ta["grams_per_kwh"] == 300.0  # 900 g over 3 kWh, not the mean of 400 and 100
    assert tb["energy_kwh"] == 0.75 and tb["co2_kg"] == 0.15
    assert tb["grams_per_kwh"] == 300.0  # over the 0.5 kWh whose intensity was known
    assert tb["energy_without_intensity_kwh"] == 0.25
    assert total == {
        "records": 4,
        "energy_kwh": 3.75,
        "co2_kg": 1.05,
        "grams_per_kwh": pytest.approx(1050 / 3.5, abs=1e-3),
        "energy_without_intensity_kwh": 0.25,
    }


def test_by_group_and_no_group() -> None:
    lines, _total = aggregate(
        [row("a", None, 1, 10), row("b", "lab", 1, 20), row("c", "lab", 1, 5)], "group"
    )
    assert [(line["group"], line["co2_kg"]) for line in lines] == [("lab", 0.025), ("-", 0.01)]


def test_no_rows_no_mean() -> None:
    lines, total = aggregate([], "user")
    assert lines == [] and total["grams_per_kwh"] is None and total["records"] == 0
