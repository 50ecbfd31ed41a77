"""The report's figures for the fixture month (report_fixture.py) equal the ones worked out by
hand and the ones recomputed here from the fixture's own numbers: sums per user and group,
active users, efficiency, waste, energy and CO2, peak demand and its moment, queue waits."""

from __future__ import annotations

import datetime as dt
import statistics

import pytest

from ds01_accounting.report.figures import compute, peak_demand
from ds01_accounting.report.period import Period
from ds01_accounting.report.queue_waits import queue_waits
from ds01_accounting.usage import UsageRow
from tests.plugins.accounting.report_fixture import (
    ALLOCATIONS,
    HAND,
    SINCE,
    UNTIL,
    queue_events,
    t,
)

OCTOBER = Period("month", "2026-10", SINCE, UNTIL)


def rows() -> list[UsageRow]:
    return [
        UsageRow(
            user=a["user"],
            group=a["group"],
            container=a["container"],
            container_id=f"id-{a['container']}",
            slots=(f"GPU-{i}",),
            gpu_equivalents=a["weight"],
            started_at=a["start"],
            ended_at=a["end"],
            gpu_eq_seconds=a["seconds"],
            busy_gpu_eq_seconds=a["busy"],
            known_gpu_eq_seconds=a["known"],
            idle_gpu_eq_seconds=a["idle"],
            energy_joules=a["energy"],
            co2_grams=a["co2"],
        )
        for i, a in enumerate(ALLOCATIONS)
    ]


def october():
    queue = queue_waits(queue_events(), SINCE, UNTIL)
    return compute(rows(), OCTOBER, queue, top_n=2, generated_at=t(11, 1, 6)).to_json()


def test_totals_equal_the_hand_figures_and_the_fixtures_sums():
    data = october()
    total = data["total"]
    # recomputed from the fixture's numbers, independently of the report's code
    seconds = sum(a["seconds"] for a in ALLOCATIONS)
    known = sum(a["known"] for a in ALLOCATIONS if a["busy"] is not None)
    busy = sum(a["busy"] for a in ALLOCATIONS if a["busy"] is not None)
    energy = sum(a["energy"] for a in ALLOCATIONS if a["energy"] is not None)
    assert total["gpu_hours"] == pytest.approx(seconds / 3600) == pytest.approx(HAND["gpu_hours"])
    assert total["efficiency"] == pytest.approx(busy / known) == pytest.approx(HAND["efficiency"])
    assert total["busy_gpu_hours"] == pytest.approx(HAND["busy_gpu_hours"])
    assert total["known_gpu_hours"] == pytest.approx(HAND["known_gpu_hours"])
    assert total["idle_gpu_hours"] == pytest.approx(HAND["idle_gpu_hours"])
    assert total["energy_kwh"] == pytest.approx(energy / 3.6e6) == pytest.approx(HAND["energy_kwh"])
    assert total["co2_kg"] == pytest.approx(HAND["co2_kg"])
    assert total["allocations"] == HAND["allocations"]
    assert data["active_users"] == HAND["active_users"] == len({a["user"] for a in ALLOCATIONS})


def test_per_user_and_group_hours_in_order_with_shares():
    data = october()
    assert [(u["name"], u["gpu_hours"]) for u in data["users"]] == list(HAND["users"].items())
    assert {g["name"]: g["gpu_hours"] for g in data["groups"]} == HAND["groups"]
    assert [g["name"] for g in data["groups"]] == ["physics", "bio", "(no group)"]
    by_user = {u["name"]: u for u in data["users"]}
    assert by_user["ds01tb"]["share"] == pytest.approx(24 / 46.125)
    assert by_user["ds01tb"]["efficiency"] == pytest.approx(0.5)
    assert by_user["ds01tb"]["idle_gpu_hours"] == pytest.approx(6.0)
    # ds01ta's MIG allocation has no utilisation: left out of efficiency, not counted as idle
    assert by_user["ds01ta"]["efficiency"] == pytest.approx(27000 / 36000)
    assert by_user["ds01ta"]["energy_kwh"] == pytest.approx(10.5)
    assert by_user["ds01td"]["energy_kwh"] is None and by_user["ds01td"]["group"] is None
    assert by_user["ds01tc"]["group"] == "bio" and by_user["ds01tc"]["allocations"] == 2
    physics = next(g for g in data["groups"] if g["name"] == "physics")
    assert (physics["users"], physics["allocations"]) == (2, 3)
    assert data["top"] == ["ds01tb", "ds01ta"]  # top_n=2


def test_peak_demand_and_when():
    peak = october()["peak"]
    assert (peak["gpu_equivalents"], peak["at"]) == HAND["peak"]


def test_peak_counts_touching_allocations_once_and_clips_to_the_window():
    def row(weight, start, end):
        return UsageRow(
            user="u", group=None, container="c", container_id="c", slots=("s",),
            gpu_equivalents=weight, started_at=start, ended_at=end, gpu_eq_seconds=1.0,
            busy_gpu_eq_seconds=None, known_gpu_eq_seconds=0.0, idle_gpu_eq_seconds=0.0,
            energy_joules=None, co2_grams=None,
        )  # fmt: skip

    touching = [row(1.0, t(10, 2, 0), t(10, 2, 1)), row(1.0, t(10, 2, 1), t(10, 2, 2))]
    assert peak_demand(touching, SINCE, UNTIL).gpu_equivalents == 1.0
    # 3 GPUs before the window, 1 inside it: only what was held inside counts
    outside = [row(3.0, t(9, 1, 0), t(9, 2, 0)), row(1.0, t(9, 30, 0), None)]
    peak = peak_demand(outside, SINCE, UNTIL)
    assert (peak.gpu_equivalents, peak.at) == (1.0, SINCE)


def test_queue_waits_pair_each_queued_request_with_its_allocation():
    queue = october()["queue"]
    assert queue == HAND["queue"]
    waits = [600.0, 5400.0, 1800.0]
    assert queue["median_seconds"] == statistics.median(waits)
    assert queue["max_seconds"] == max(waits)


def test_a_request_queued_again_before_it_was_served_counts_as_not_served():
    events = [e for e in queue_events() if e["details"]["container"] == "sim2"]
    again = {**events[0], "timestamp": "2026-10-07T11:00:00Z"}
    waits = queue_waits([events[0], again, events[1]], SINCE, UNTIL)
    assert (waits.requests, waits.served, waits.not_served) == (2, 1, 1)
    assert waits.max_seconds == 1800.0  # from the second request, not the first


def test_an_empty_month():
    data = compute(
        [], OCTOBER, queue_waits([], SINCE, UNTIL), top_n=10, generated_at=UNTIL
    ).to_json()
    assert data["total"]["gpu_hours"] == 0 and data["active_users"] == 0
    assert data["total"]["efficiency"] is None and data["total"]["energy_kwh"] is None
    assert data["peak"] == {"gpu_equivalents": 0.0, "at": None}
    assert data["queue"]["requests"] == 0 and data["queue"]["median_seconds"] is None
    assert data["users"] == [] and data["groups"] == []


def test_period_in_the_json():
    period = october()["period"]
    assert period == {
        "kind": "month",
        "label": "2026-10",
        "since": "2026-10-01T00:00:00Z",
        "until": "2026-11-01T00:00:00Z",
    }
    assert isinstance(dt.datetime.fromisoformat(october()["generated_at"]), dt.datetime)
