"""``ds01 carbon report`` over real usage records: two users on the simulated host, the energy
counters moving, a schedule file whose intensity changes at 10:00, the accounting cycle
recording it; the report's energy and CO₂ against figures computed here from the watts, the
minutes and the schedule — for an admin everyone's, for a plain user (through ``ds01-api``)
their own only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ds01_accounting.carbon.services import carbon_report
from ds01_accounting.recorder import record_cycle
from ds01_core.services.caller import Caller
from ds01_core.services.operations import ServiceContext
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.accounting.accounting_helpers import (
    MIG_WATTS,
    QUIET,
    WHOLE_WATTS,
    Clock,
    allocate,
    make_runtime,
    release,
    report,
)

KWH = 3_600_000.0
STEP = 900  # a cycle every 15 minutes, 09:00 to 10:30
CYCLES = 6
#: g/kWh at each cycle: the schedule's 400 until 10:00, then 100 (the recorder bills a cycle's
#: energy at the intensity in force when it is recorded: 09:15, 09:30, 09:45, 10:00 ...)
INTENSITY = [400, 400, 400, 100, 100, 100]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Any, Path]:
    """ds01ta on whole GPU 0 (200 W), ds01tb on all of MIG GPU 1 (350 W), 90 minutes."""
    schedule = tmp_path / "carbon.yaml"
    schedule.write_text("hourly:\n  0-9: 400\n  10-23: 100\n")
    clock = Clock()
    extra = {
        "lifecycle": {"interval": "10m"},
        "plugins": {
            "disabled": QUIET,
            "accounting": {"carbon": {"source": "schedule", "schedule_file": str(schedule)}},
        },
    }
    runtime, _provider = make_runtime(tmp_path, clock, extra)
    ta = allocate(runtime, "ds01ta", "train", "0")
    tb = allocate(runtime, "ds01tb", "sweep", "1.2", "1.3", "1.4")
    record_cycle(runtime, report(runtime))  # the counters' first reading
    for _ in range(CYCLES):
        clock.advance(STEP)
        record_cycle(runtime, report(runtime))
    release(runtime, ta)
    release(runtime, tb)
    record_cycle(runtime, report(runtime))
    return runtime, tmp_path


def expected(watts: float) -> tuple[float, float]:
    """(kWh, g CO₂) for ``watts`` over the six cycles at their intensities."""
    kwh = watts * STEP / KWH
    return kwh * CYCLES, sum(kwh * g for g in INTENSITY)


def test_the_report_figures_equal_watts_times_time_times_intensity(
    recorded: tuple[Any, Path],
) -> None:
    runtime, _ = recorded
    admin = ServiceContext(runtime, Caller("root", 0, True))
    data = carbon_report(admin, period="all")
    lines = {line["user"]: line for line in data["rows"]}
    ta_kwh, ta_g = expected(WHOLE_WATTS)  # 0.3 kWh, 75 g
    tb_kwh, tb_g = expected(MIG_WATTS)  # 0.525 kWh, 131.25 g
    assert lines["ds01ta"]["energy_kwh"] == pytest.approx(ta_kwh, rel=1e-6)
    assert lines["ds01ta"]["co2_kg"] == pytest.approx(ta_g / 1000, rel=1e-6)
    assert lines["ds01tb"]["energy_kwh"] == pytest.approx(tb_kwh, rel=1e-6)
    assert lines["ds01tb"]["co2_kg"] == pytest.approx(tb_g / 1000, rel=1e-6)
    assert [line["user"] for line in data["rows"]] == ["ds01tb", "ds01ta"]  # most CO₂ first
    assert lines["ds01ta"]["grams_per_kwh"] == pytest.approx(250.0)  # half at 400, half at 100
    assert data["total"]["co2_kg"] == pytest.approx((ta_g + tb_g) / 1000, rel=1e-6)
    assert data["total"]["energy_without_intensity_kwh"] == 0

    plain = ServiceContext(runtime, Caller("ds01ta", 1001, False))
    own = carbon_report(plain, period="all")
    assert [line["user"] for line in own["rows"]] == ["ds01ta"] and own["user"] == "ds01ta"


def test_a_plain_user_gets_only_their_own_co2_through_ds01_api(
    recorded: tuple[Any, Path], user_cli: Path, unix_users: Any, admin_member: Any
) -> None:
    _runtime, directory = recorded
    directory.chmod(0o755)
    config = directory / "ds01.yaml"  # accounting_helpers.make_runtime's
    ta_kwh, ta_g = expected(WHOLE_WATTS)
    with running_api(config) as sock:
        env = {"DS01_API_SOCKET": sock}
        mine = run_as(
            unix_users["ds01ta"],
            user_cli,
            ["carbon", "report", "--period", "all", "--json"],
            env=env,
        )
        assert mine.returncode == 0, mine.stderr
        data = json.loads(mine.stdout)
        assert [(r["user"], r["energy_kwh"]) for r in data["rows"]] == [
            ("ds01ta", pytest.approx(ta_kwh))
        ]
        assert data["rows"][0]["co2_kg"] == pytest.approx(ta_g / 1000, rel=1e-6)

        other = run_as(
            unix_users["ds01ta"], user_cli, ["carbon", "report", "--user", "ds01tb"], env=env
        )
        assert other.returncode == 2
        assert (
            other.stderr
            == "Error: only admins may see or change another user's CO₂; you are ds01ta\n"
        )

        csv_out = run_as(
            admin_member,
            user_cli,
            ["carbon", "report", "--period", "all", "--by", "user", "--csv"],
            env=env,
        )
        assert csv_out.returncode == 0, csv_out.stderr
        header, *rows = csv_out.stdout.strip().splitlines()
        assert header.startswith("user,records,energy_kwh,co2_kg,grams_per_kwh")
        assert [r.split(",")[0] for r in rows] == ["ds01tb", "ds01ta"]

        text = run_as(
            unix_users["ds01tb"], user_cli, ["carbon", "report", "--period", "all"], env=env
        )
        assert text.returncode == 0, text.stderr
        assert "ds01tb" in text.stdout and "ds01ta" not in text.stdout
        assert "Total: 0.525 kWh, 0.131 kg CO₂-eq" in text.stdout
