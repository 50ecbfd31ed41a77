"""Energy attribution with the simulated host's moving energy counters: a whole GPU's energy to
its holder, a MIG GPU's by compute slices weighted by GPM activity, unallocated slices kept as
unattributed, a holder for part of an interval billed for that part, a counter reset skipped."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from ds01_accounting.energy import Counter, Holding, attribute, co2_grams, delta
from ds01_accounting.recorder import record_cycle
from ds01_accounting.store import db_path
from ds01_accounting.usage import lifetime_totals, usage_rows
from ds01_core.domain.model import Gpu, GpuSlot
from tests.plugins.accounting.accounting_helpers import (
    MIG_WATTS,
    T0,
    WHOLE_WATTS,
    Clock,
    allocate,
    make_runtime,
    release,
    report,
    slots,
)


def _mig_gpu(utils: tuple[float | None, ...], energy: float | None = 100.0) -> Gpu:
    slot = [
        GpuSlot(f"s{i}", "mig", 0, "g", "m", n, 7, 0, utilization=u)
        for i, (n, u) in enumerate(zip((3, 2, 2), utils, strict=True))
    ]
    return Gpu(0, "g", "m", 0, 0, True, 7, tuple(slot), energy_joules=energy)


def test_the_rule_by_slices_activity_and_fraction_held() -> None:
    gpu = _mig_gpu((80.0, 20.0, 0.0))
    billed, rest = attribute(gpu, 700.0, [Holding(1, "s0", 1.0), Holding(2, "s1", 1.0)])
    assert rest == pytest.approx(200.0)  # the free 2g: 2/7 of it
    assert billed == {1: pytest.approx(500 * 240 / 280), 2: pytest.approx(500 * 40 / 280)}
    # an unknown utilisation: by slices alone
    unknown = _mig_gpu((80.0, None, 0.0))
    billed, rest = attribute(unknown, 700.0, [Holding(1, "s0", 1.0), Holding(2, "s1", 0.5)])
    assert billed == {1: pytest.approx(300.0), 2: pytest.approx(100.0)}
    assert rest == pytest.approx(300.0)
    # nobody holds it: all unattributed
    assert attribute(gpu, 700.0, []) == ({}, 700.0)


def test_a_counter_that_went_down_or_a_long_gap_bills_nothing() -> None:
    gpu = _mig_gpu((None, None, None), energy=100.0)
    assert delta(gpu, Counter(40.0, 10.0), 20.0, 60.0) == (60.0, 10.0)
    assert delta(gpu, Counter(140.0, 10.0), 20.0, 60.0) is None  # reset
    assert delta(gpu, Counter(40.0, 10.0), 200.0, 60.0) is None  # gap
    assert delta(gpu, None, 20.0, 60.0) is None  # first reading
    assert co2_grams(3.6e6, 250.0) == pytest.approx(250.0)
    assert co2_grams(3.6e6, None) is None


def test_energy_from_the_simulated_counters(tmp_path: Path) -> None:
    clock = Clock()
    runtime, provider = make_runtime(tmp_path, clock)
    by_id = slots(runtime)
    allocate(runtime, "ds01ta", "whole", "0")
    allocate(runtime, "ds01ta", "big", "1.2")
    small = allocate(runtime, "ds01tb", "small", "1.3")
    allocate(runtime, "ds01tb", "nocounter", "2")
    record_cycle(runtime, report(runtime))  # the counters' first reading: nothing to bill

    clock.advance(60)
    cycle = report(runtime)
    util = {s.slot_id: s.utilization for g in cycle.gpus for s in g.slots}
    assert util["1.2"] == pytest.approx(80) and util["1.3"] == pytest.approx(20)
    record_cycle(runtime, cycle)
    mig = MIG_WATTS * 60
    share = mig * 5 / 7  # 3g + 2g of 7 slices are held
    expected = {
        "whole": WHOLE_WATTS * 60,
        "big": share * 240 / 280,
        "small": share * 40 / 280,
    }
    assert _energy(runtime) == pytest.approx({**expected, "nocounter": None})

    # GPU 0's driver is reloaded: its counter starts again from zero; GPU 1's carries on
    # (the simulated counter is its start value + power x time: zero now)
    provider.nvml.host.gpus[0].energy_joules = -WHOLE_WATTS * 60
    clock.advance(60)
    record_cycle(runtime, report(runtime))
    expected["big"] += share * 240 / 280
    expected["small"] += share * 40 / 280
    assert _energy(runtime) == pytest.approx({**expected, "nocounter": None})

    # the small one is released half-way through the next interval: billed for its half
    clock.advance(30)
    release(runtime, small)
    clock.advance(30)
    record_cycle(runtime, report(runtime))
    expected["whole"] += WHOLE_WATTS * 60
    held = mig * (3 / 7 + 1 / 7)
    expected["big"] += held * (3 / 7 * 80) / (3 / 7 * 80 + 1 / 7 * 20)
    expected["small"] += held * (1 / 7 * 20) / (3 / 7 * 80 + 1 / 7 * 20)
    assert _energy(runtime) == pytest.approx({**expected, "nocounter": None})

    db = sqlite3.connect(db_path(runtime))
    unattributed = dict(db.execute("SELECT gpu_uuid, SUM(energy) FROM unattributed GROUP BY 1"))
    assert unattributed == {by_id["1.2"].gpu_uuid: pytest.approx(mig * 2 / 7 * 2 + mig * 3 / 7)}
    totals = lifetime_totals(runtime)
    assert totals["ds01ta"][0] == pytest.approx(expected["whole"] + expected["big"])
    assert totals["ds01tb"][0] == pytest.approx(expected["small"])
    runtime.close()


def _energy(runtime) -> dict[str, float | None]:
    rows = usage_rows(runtime, T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=2))
    return {row.container: row.energy_joules for row in rows}
