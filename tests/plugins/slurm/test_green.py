"""``ds01 job submit --green``: the planner (a step-function forecast, the lowest mean intensity
over the run before the deadline, now on ties and for savings under 1 %), the deadline, the
lines and ``--begin`` it prints, and the plan made by a real non-root user from a real
``ds01-api`` serving ds01-accounting's ``accounting.carbon_status`` (a schedule file)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ds01_slurm.green
from ds01_slurm.config import GreenConfig
from ds01_slurm.green import MIN_SAVING, GreenError, NoForecast, mean_intensity, plan_start
from ds01_slurm.green_cli import (
    describe,
    mass_text,
    parse_deadline,
    power_watts,
    sbatch_begin,
)
from tests.helpers.servers import running_api

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 10, 20, tzinfo=UTC)
H = 3600.0


def at(hours: float) -> dt.datetime:
    """``hours`` after the top of NOW's hour (10:00 UTC)."""
    return NOW.replace(minute=0) + dt.timedelta(hours=hours)


def hourly(*values: float) -> list[tuple[dt.datetime, float]]:
    """Points at 11:00, 12:00, … (the hour boundaries after NOW)."""
    return [(at(i + 1), v) for i, v in enumerate(values)]


# -- the planner ---------------------------------------------------------------------------------


def test_the_mean_over_a_run_follows_the_steps_and_the_last_value_holds_beyond() -> None:
    steps = [(NOW, 300.0), (at(1), 100.0), (at(2), 200.0)]
    # 10:20-11:20: 40 min at 300, 20 min at 100
    assert mean_intensity(steps, NOW, NOW + dt.timedelta(hours=1)) == pytest.approx(
        (40 * 300 + 20 * 100) / 60
    )
    # 12:00-16:00: beyond the last point, its value
    assert mean_intensity(steps, at(2), at(6)) == pytest.approx(200)


def test_a_job_starts_at_the_window_with_the_lowest_mean_and_shows_both_estimates() -> None:
    # 2 h job; 13:00-15:00 is the cleanest pair of hours
    forecast = hourly(280, 260, 120, 110, 250, 250)
    plan = plan_start(300, forecast, NOW, 2 * H, NOW + dt.timedelta(hours=12), 600)
    assert plan.begin == at(3)
    assert plan.intensity_then == pytest.approx(115)
    # now: 40 min at 300, 60 at 280, 20 at 260
    assert plan.intensity_now == pytest.approx((40 * 300 + 60 * 280 + 20 * 260) / 120)
    assert plan.grams_then == pytest.approx(0.6 * 2 * 115)  # kW x h x g/kWh
    assert plan.grams_now == pytest.approx(0.6 * 2 * plan.intensity_now)
    assert plan.saved_grams == pytest.approx(plan.grams_now - plan.grams_then)
    assert not plan.starts_now and "115 g CO₂-eq/kWh" in plan.reason


def test_a_tie_starts_now_and_equal_later_windows_take_the_earliest() -> None:
    flat = plan_start(200, hourly(200, 200, 200), NOW, H, NOW + dt.timedelta(hours=6), 300)
    assert flat.begin == NOW and flat.starts_now
    assert flat.grams_then == flat.grams_now and flat.saved_grams == 0
    assert "no start before" in flat.reason
    two_dips = plan_start(300, hourly(300, 100, 300, 100), NOW, H, NOW + dt.timedelta(hours=8), 300)
    assert two_dips.begin == at(2)


def test_a_saving_under_one_percent_is_not_worth_a_delay() -> None:
    deadline = NOW + dt.timedelta(hours=6)
    small = plan_start(200, hourly(200 * (1 - MIN_SAVING / 2)), NOW, H, deadline, 300)
    assert small.starts_now and small.intensity_then == small.intensity_now
    enough = plan_start(200, hourly(200 * (1 - 2 * MIN_SAVING)), NOW, H, deadline, 300)
    assert enough.begin == at(1)


def test_a_start_is_never_so_late_that_the_job_misses_its_deadline() -> None:
    # the cleanest hour is 15:00, but a 2 h job must end by 16:30: it can start 14:30 at most
    forecast = hourly(300, 300, 300, 250, 10, 10)
    plan = plan_start(300, forecast, NOW, 2 * H, at(6.5), 300)
    assert plan.begin == at(4)  # 14:00-16:00: 250 then 10
    assert plan.begin + dt.timedelta(hours=2) <= at(6.5)
    # the deadline leaves no forecast point: now, and the reason says so
    tight = plan_start(300, forecast, NOW, 2 * H, NOW + dt.timedelta(hours=2, minutes=30), 300)
    assert tight.starts_now and "must start now" in tight.reason


def test_a_point_at_or_before_now_gives_way_to_the_intensity_now() -> None:
    forecast = [(NOW - dt.timedelta(minutes=20), 50.0), (NOW, 60.0), *hourly(300)]
    plan = plan_start(300, forecast, NOW, H, NOW + dt.timedelta(hours=4), 300)
    assert plan.starts_now and plan.intensity_now == 300


def test_refusals_say_what_was_wrong_and_what_to_do() -> None:
    with pytest.raises(GreenError, match=r"cannot finish by .*: it needs 4h; give a later"):
        plan_start(200, hourly(100), NOW, 4 * H, NOW + dt.timedelta(hours=3), 300)
    with pytest.raises(NoForecast, match="starting now is as good as any time; a forecast source"):
        plan_start(200, [], NOW, H, NOW + dt.timedelta(hours=3), 300)
    with pytest.raises(GreenError, match="intensity now is not known"):
        plan_start(None, hourly(100), NOW, H, NOW + dt.timedelta(hours=3), 300)
    with pytest.raises(GreenError, match="--time"):
        plan_start(200, hourly(100), NOW, 0, NOW + dt.timedelta(hours=3), 300)


# -- the CLI side --------------------------------------------------------------------------------


def test_deadlines_as_a_length_a_date_or_a_time_of_day() -> None:
    assert parse_deadline("12h", NOW) == NOW + dt.timedelta(hours=12)
    assert parse_deadline("2d", NOW) == NOW + dt.timedelta(days=2)
    assert parse_deadline("1h30m", NOW) == NOW + dt.timedelta(minutes=90)
    assert parse_deadline("2026-12-02T08:00Z", NOW) == dt.datetime(2026, 12, 2, 8, tzinfo=UTC)
    local = parse_deadline("2026-12-02T08:00", NOW).astimezone()
    assert (local.day, local.hour, local.minute) == (2, 8, 0)
    for text in ("08:00", "23:59", "0:00"):
        moment = parse_deadline(text, NOW)
        hour, minute = (int(x) for x in text.split(":"))
        shown = moment.astimezone()
        assert (shown.hour, shown.minute) == (hour, minute)
        assert NOW < moment <= NOW + dt.timedelta(hours=25)  # its next occurrence
    for bad, words in (
        ("soon", "cannot read 'soon'; expected a deadline like 12h, 2d"),
        ("45", "cannot read '45'"),
        ("25:00", "'25:00' is not a time of day"),
        ("2026-11-30T08:00Z", "has passed; give a later one"),
        ("2026-13-01", "cannot read"),
    ):
        with pytest.raises(GreenError, match=words):
            parse_deadline(bad, NOW)


def test_the_lines_and_begin_a_submit_prints() -> None:
    later = plan_start(300, hourly(300, 300, 120), NOW, 2 * H, NOW + dt.timedelta(hours=12), 600)
    lines = describe(later)
    start = at(3).astimezone()
    assert lines[0].startswith(f"Start at {start:%H:%M} (in 2h40m): ~144 g CO₂ instead of ~")
    assert lines[0].endswith(f"now (-{round(later.saved_share * 100)} %).")
    assert lines[1].startswith("  Why: the grid is forecast at 120 g")
    assert lines[2] == "  Estimate: 600 W assumed for 2h (plugins.slurm.green), not measured."
    assert sbatch_begin(later) == f"--begin={start:%Y-%m-%dT%H:%M:%S}"

    now = plan_start(100, hourly(300), NOW, H, NOW + dt.timedelta(hours=3), 300)
    assert describe(now)[0] == "Starting now is greenest: ~50 g CO₂ over the run."
    assert sbatch_begin(now) is None
    assert [mass_text(g) for g in (849.6, 1234, 15_400)] == ["~850 g", "~1.2 kg", "~15 kg"]
    assert power_watts(GreenConfig(watts_per_gpu=250, watts_cpu_only=80), 2) == 500
    assert power_watts(GreenConfig(watts_per_gpu=250, watts_cpu_only=80), 0.5) == 125
    assert power_watts(GreenConfig(watts_per_gpu=250, watts_cpu_only=80), 0) == 80


# -- through a real ds01-api, as a real non-root user ----------------------------------------------

# runs as the user: their ds01 (tests/helpers/user_cli.py) with this plugin before it, the
# plugins found by entry point as the real ``ds01`` finds them, the API socket from the env
SCRIPT = """
import datetime as dt, json, sys
sys.path[:0] = [sys.argv[2], sys.argv[1]]
from ds01_core.framework.manager import make_plugin_host
from ds01_core.transports.cli.state import CliState
from ds01_slurm.config import GreenConfig
from ds01_slurm.green import GreenError
from ds01_slurm.green_cli import describe, green_plan, parse_deadline, sbatch_begin
state = CliState(None, False, make_plugin_host(builtins=()))
now = dt.datetime.now(dt.UTC)
try:
    plan = green_plan(state, duration_s=float(sys.argv[3]), deadline=parse_deadline(sys.argv[4], now),
                      gpus=float(sys.argv[5]), config=GreenConfig(watts_per_gpu=300))
except GreenError as exc:
    print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
else:
    print(json.dumps({"begin": plan.begin.isoformat(), "grams_now": plan.grams_now,
                      "grams_then": plan.grams_then, "lines": describe(plan),
                      "sbatch": sbatch_begin(plan), "warning": plan.warning}))
"""


@pytest.fixture
def slurm_copy() -> Iterator[Path]:
    """This plugin's code where the test users can read it (the checkout may be private)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ds01-green-"))
    package = Path(ds01_slurm.green.__file__).parent
    shutil.copytree(package, root / "ds01_slurm", ignore=shutil.ignore_patterns("__pycache__"))
    # a package of its own, first on the path: not the (maybe older) one in the user's site
    (root / "ds01_slurm" / "__init__.py").touch(exist_ok=True)
    (root / "plan.py").write_text(SCRIPT)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def plan_as(user: Any, cli: Path, code: Path, sock: str, *args: str) -> dict[str, Any]:
    """``green_plan`` run by ``user`` against the ds01-api at ``sock``: its JSON result."""
    done = subprocess.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            "env",
            "-i",
            f"HOME={user.home}",
            f"DS01_API_SOCKET={sock}",
            "LANG=C.UTF-8",
            "/usr/bin/python3",
            "-I",
            str(code / "plan.py"),
            str(cli / "site"),
            str(code),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_plain_user_plans_a_green_start_from_ds01_api(
    tmp_config: Any,
    tmp_path: Path,
    user_cli: Path,
    unix_users: Any,
    slurm_copy: Path,
) -> None:
    tmp_path.chmod(0o755)
    top = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    clean_from, clean_until = top + dt.timedelta(hours=3), top + dt.timedelta(hours=9)
    schedule = tmp_path / "carbon.yaml"
    schedule.write_text(
        "default: 300\nperiods:\n"
        f'  - {{from: "{clean_from:%Y-%m-%dT%H:%MZ}", until: "{clean_until:%Y-%m-%dT%H:%MZ}", '
        "grams_per_kwh: 100}\n"
    )
    carbon = {"source": "schedule", "schedule_file": str(schedule)}
    config = tmp_config({"plugins": {"accounting": {"carbon": carbon}}})
    ta = unix_users["ds01ta"]
    with running_api(config) as sock:
        # a 2 h job on one GPU, due in 12 h: the clean hours' first
        plan = plan_as(ta, user_cli, slurm_copy, sock, str(2 * H), "12h", "1")
        assert "error" not in plan, plan
        assert dt.datetime.fromisoformat(plan["begin"]) == clean_from
        assert plan["grams_then"] == pytest.approx(0.3 * 2 * 100)
        assert plan["grams_now"] > plan["grams_then"] * 2.5
        begin = clean_from.astimezone()
        assert plan["sbatch"] == f"--begin={begin:%Y-%m-%dT%H:%M:%S}"
        first = plan["lines"][0]
        assert first.startswith((f"Start at {begin:%H:%M} (", f"Start at {begin:%a %H:%M} ("))
        assert "~60 g CO₂ instead of ~180 g now (-67 %)." in first
        # due before the clean hours end a 2 h run: now
        soon = plan_as(ta, user_cli, slurm_copy, sock, str(2 * H), "2h30m", "1")
        assert soon["begin"] and soon["sbatch"] is None
        assert soon["lines"][0].startswith("Starting now is greenest")
        # a job that cannot make its deadline is refused before the service is asked
        late = plan_as(ta, user_cli, slurm_copy, sock, str(4 * H), "3h", "1")
        assert late["kind"] == "GreenError" and "it needs 4h" in late["error"]


@pytest.mark.parametrize(
    ("plugins", "kind", "words"),
    [
        ({"disabled": ["accounting"]}, "GreenError", "needs ds01-accounting's carbon intensity"),
        ({"accounting": {"carbon": {"source": "none"}}}, "NoForecast", "no carbon source"),
        (
            {"accounting": {"carbon": {"source": "fixed", "grams_per_kwh": 99}}},
            "NoForecast",
            "a fixed 99 g CO₂-eq/kWh, so starting now is as good as any time; ask your admin",
        ),
    ],
)
def test_without_a_forecast_a_plain_user_is_told_why_and_what_to_do(
    tmp_config: Any,
    tmp_path: Path,
    user_cli: Path,
    unix_users: Any,
    slurm_copy: Path,
    plugins: dict[str, Any],
    kind: str,
    words: str,
) -> None:
    tmp_path.chmod(0o755)
    config = tmp_config({"plugins": plugins})
    with running_api(config) as sock:
        refused = plan_as(unix_users["ds01ta"], user_cli, slurm_copy, sock, str(H), "12h", "1")
    assert refused["kind"] == kind and words in refused["error"], refused
