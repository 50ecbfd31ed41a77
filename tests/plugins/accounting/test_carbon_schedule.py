"""The ``fixed`` and ``schedule`` sources and the carbon section's checks: values per hour of
day (in the file's time zone) and per dated period, YAML and CSV, every problem named by the
configuration path, the file and the spot in it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ds01_accounting.carbon import forecast, intensity_now, status
from ds01_accounting.carbon.schedule import ScheduleError, load_schedule
from ds01_core.domain.config import ConfigError
from tests.plugins.accounting.carbon_fixtures import Clock, carbon_runtime

UTC = dt.UTC

SCHEDULE = """\
timezone: Europe/London
default: 230
hourly:
  0-6: 150
  7-17: 260
  18: 300
periods:
  - {from: 2026-12-24, until: 2026-12-27, grams_per_kwh: 140}
  - {from: "2026-07-01T09:00Z", until: "2026-07-01T10:00Z", grams_per_kwh: 5}
"""


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_yaml_schedule_hours_in_its_time_zone_and_dated_periods(tmp_path: Path) -> None:
    path = tmp_path / "carbon.yaml"
    path.write_text(SCHEDULE)
    schedule = load_schedule(str(path))
    assert schedule.value_at(at(2026, 12, 1, 3)) == 150  # winter: London = UTC
    assert schedule.value_at(at(2026, 12, 1, 7)) == 260
    assert schedule.value_at(at(2026, 12, 1, 18)) == 300
    assert schedule.value_at(at(2026, 12, 1, 19)) == 230  # no hour: the default
    assert schedule.value_at(at(2026, 7, 1, 6)) == 260  # summer: 06:00 UTC is 07:00 BST
    assert schedule.value_at(at(2026, 7, 1, 5, 59)) == 150
    assert schedule.value_at(at(2026, 7, 1, 9, 30)) == 5  # a period wins over the hour
    assert schedule.value_at(at(2026, 7, 1, 10)) == 260  # until is exclusive
    assert schedule.value_at(at(2026, 12, 24, 0)) == 140  # a date is local midnight
    assert schedule.value_at(at(2026, 12, 26, 23, 59)) == 140
    assert schedule.value_at(at(2026, 12, 27, 0)) == 150


def test_csv_schedule(tmp_path: Path) -> None:
    path = tmp_path / "carbon.csv"
    path.write_text(
        "# grams CO2-eq per kWh\n"
        "hour,from,until,grams_per_kwh\n"
        "0-11,,,100\n"
        "12-23,,,200.5\n"
        ",2026-12-01T00:00Z,2026-12-01T06:00Z,42\n"
    )
    schedule = load_schedule(str(path))
    assert schedule.value_at(at(2026, 11, 30, 11)) == 100
    assert schedule.value_at(at(2026, 11, 30, 12)) == 200.5
    assert schedule.value_at(at(2026, 12, 1, 5)) == 42
    assert schedule.value_at(at(2026, 12, 1, 6)) == 100


BAD = [
    (
        "carbon.yaml",
        "hourly:\n  7-17: lots\n",
        "hourly.7-17: expected a number of g CO₂-eq/kWh, got 'lots'",
    ),
    ("carbon.yaml", "hourly:\n  25: 100\n", "hourly.25: hours run from 0 to 23"),
    ("carbon.yaml", "hourly:\n  0-6: 100\n  5: 90\n", "hourly.5: hour 5 is given twice"),
    ("carbon.yaml", "hourly: [1, 2, 3]\n", "hourly: a list needs 24 values, one per hour; got 3"),
    ("carbon.yaml", "hourly:\n  3: -4\n", "hourly.3: must be 0 or more, got -4"),
    ("carbon.yaml", "timezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
    ("carbon.yaml", "hourlies: {}\n", "hourlies: unknown key"),
    (
        "carbon.yaml",
        "periods:\n  - {from: 2026-12-02, until: 2026-12-01, grams_per_kwh: 1}\n",
        "periods[0].until: must be after from",
    ),
    (
        "carbon.yaml",
        "periods:\n  - {from: soon, until: 2026-12-01, grams_per_kwh: 1}\n",
        "periods[0].from: expected a date",
    ),
    (
        "carbon.yaml",
        "periods:\n  - {from: 2026-12-01, until: 2026-12-02, g: 1}\n",
        "periods[0].g: unknown key",
    ),
    ("carbon.yaml", "hourly: [\n", "not valid YAML"),
    (
        "carbon.csv",
        "hour,value\n1,2\n",
        "line 1: the header needs grams_per_kwh and hour, or from and until",
    ),
    (
        "carbon.csv",
        "hour,grams_per_kwh\n1,2\nx,3\n",
        "line 3: expected an hour 0-23 or a range like 0-6, got 'x'",
    ),
    (
        "carbon.csv",
        "hour,from,until,grams_per_kwh\n,,,3\n",
        "line 2: the row has neither an hour nor a from/until period",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[2][:30] for b in BAD])
def test_a_bad_schedule_names_the_file_and_the_spot(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScheduleError) as caught:
        load_schedule(str(path))
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_the_schedule_source_now_and_its_forecast(
    tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = tmp_path / "carbon.yaml"
    path.write_text(SCHEDULE)
    clock = Clock(at(2026, 12, 1, 5, 20))
    runtime = carbon_runtime(tmp_config, {"source": "schedule", "schedule_file": str(path)}, clock)
    now = intensity_now(runtime)
    assert now is not None and (now.grams_per_kwh, now.source, now.at, now.stale) == (
        150,
        "schedule",
        clock.now,
        False,
    )
    points = forecast(runtime, hours=4)
    assert [(p.at, p.grams_per_kwh) for p in points] == [
        (at(2026, 12, 1, 6), 150),
        (at(2026, 12, 1, 7), 260),
        (at(2026, 12, 1, 8), 260),
        (at(2026, 12, 1, 9), 260),
    ]
    # the file changes: read again
    path.write_text("hourly: [" + ", ".join(["77"] * 24) + "]\n")
    os.utime(path, (1, 1))
    assert intensity_now(runtime).grams_per_kwh == 77  # type: ignore[union-attr]


def test_a_schedule_broken_after_start_keeps_its_last_good_version(
    tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = tmp_path / "carbon.yaml"
    path.write_text(SCHEDULE)
    clock = Clock(at(2026, 12, 1, 8))
    runtime = carbon_runtime(
        tmp_config, {"source": "schedule", "schedule_file": str(path), "grams_per_kwh": 1}, clock
    )
    assert intensity_now(runtime).grams_per_kwh == 260  # type: ignore[union-attr]
    path.write_text("hourly:\n  8: many\n")
    assert intensity_now(runtime).grams_per_kwh == 260  # type: ignore[union-attr]
    assert f"{path}: hourly.8: expected a number" in status(runtime)["error"]


def test_fixed_and_none(tmp_config: Callable[..., Path]) -> None:
    clock = Clock(at(2026, 12, 1, 8))
    fixed = carbon_runtime(tmp_config, {"source": "fixed", "grams_per_kwh": 212.5}, clock)
    now = intensity_now(fixed)
    assert now is not None and (now.grams_per_kwh, now.source, now.at, now.stale) == (
        212.5,
        "fixed",
        clock.now,
        False,
    )
    assert forecast(fixed) == []
    off = carbon_runtime(tmp_config, {}, clock)
    assert intensity_now(off) is None and forecast(off) == []
    assert status(off)["source"] == "none"


CONFIG_PROBLEMS = [
    ({"source": "fixed"}, "plugins.accounting.carbon.grams_per_kwh: source fixed needs a value"),
    (
        {"source": "fixed", "grams_per_kwh": -1},
        "plugins.accounting.carbon.grams_per_kwh: must be 0 or more",
    ),
    ({"source": "coal"}, "plugins.accounting.carbon.source: expected one of"),
    (
        {"source": "uk", "base_url": "ftp://x"},
        "plugins.accounting.carbon.base_url: expected an http:// or https:// URL",
    ),
    ({"source": "uk", "timeout": "soon"}, "plugins.accounting.carbon.timeout:"),
    (
        {"source": "electricitymaps"},
        "plugins.accounting.carbon.electricitymaps.zone: required for source electricitymaps",
    ),
    (
        {"source": "electricitymaps", "electricitymaps": {"zone": "DE"}},
        "plugins.accounting.carbon.electricitymaps.token_file: required",
    ),
    (
        {"source": "electricitymaps", "electricitymaps": {"zone": "DE", "token_file": "key.txt"}},
        "plugins.accounting.carbon.electricitymaps.token_file:",
    ),
    (
        {"source": "watttime", "watttime": {"region": "CAISO_NORTH"}},
        "plugins.accounting.carbon.watttime.username: required",
    ),
    (
        {"source": "watttime", "watttime": {"api_key": "x"}},
        "plugins.accounting.carbon.watttime.api_key: unknown key",
    ),
    (
        {"source": "schedule"},
        "plugins.accounting.carbon.schedule_file: source schedule needs a schedule_file",
    ),
]


@pytest.mark.parametrize(
    ("carbon", "message"), CONFIG_PROBLEMS, ids=[m[1][26:70] for m in CONFIG_PROBLEMS]
)
def test_the_carbon_section_names_each_problem_by_its_path(
    tmp_config: Callable[..., Path], carbon: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        carbon_runtime(tmp_config, carbon)
    assert message in str(caught.value)


def test_a_bad_schedule_file_is_a_configuration_problem(
    tmp_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = tmp_path / "carbon.yaml"
    path.write_text("hourly:\n  7-17: lots\n")
    with pytest.raises(ConfigError) as caught:
        carbon_runtime(tmp_config, {"source": "schedule", "schedule_file": str(path)})
    assert (
        f"plugins.accounting.carbon.schedule_file: {path}: hourly.7-17: expected a number"
        in str(caught.value)
    )
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        carbon_runtime(tmp_config, {"source": "schedule", "schedule_file": str(missing)})
    assert (
        f"plugins.accounting.carbon.schedule_file: {missing}: no such file or not readable"
        in str(caught.value)
    )
