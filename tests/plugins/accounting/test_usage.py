"""``ds01 usage`` through click as root (in-process) over records made by the recorder: totals
equal the sum over the allocations, by user, group and day, as a table, JSON and CSV; windows
and periods; bad options are usage errors; the operation's rule for plain users."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import importlib.metadata as md
import io
import json
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import ds01_accounting
from ds01_accounting.config import AccountingConfig
from ds01_accounting.periods import period_start, window
from ds01_accounting.recorder import record_cycle
from ds01_core.domain.config import ConfigError, build_config
from ds01_core.framework.manager import EntryPointSource, make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Forbidden
from ds01_core.services.operations import ServiceContext
from tests.plugins.accounting.accounting_helpers import (
    Clock,
    allocate,
    make_runtime,
    release,
    report,
)

GROUPS = {
    "limits": {"groups": {"students": {"members": ["ds01ta"]}, "staff": {"members": ["ds01tb"]}}}
}
PLUGIN_DIR = Path(__file__).resolve().parents[3] / "plugins" / "accounting"
WINDOW = ("--since", "2025-03-03", "--until", "2025-03-04T00:00:00Z")


@pytest.fixture(scope="module")
def root() -> click.Group:
    from ds01_core.transports.cli import cli

    tree = copy.copy(cli)
    tree.commands = dict(cli.commands)
    tree.commands.pop("usage", None)
    ds01_accounting.add_cli_commands(cli=tree)
    return tree


@pytest.fixture
def seeded(tmp_path: Path) -> Runtime:
    """ds01ta held GPU 0 for 300 s; ds01tb a 3g slice for 600 s and a 2g one for 90 s."""
    clock = Clock()
    runtime, _gpus = make_runtime(tmp_path, clock, GROUPS)
    a = allocate(runtime, "ds01ta", "a", "0")
    b = allocate(runtime, "ds01tb", "b", "1.2")
    for step in range(20):
        clock.advance(30)
        if step == 2:
            c = allocate(runtime, "ds01tb", "c", "1.3")
        if step == 5:
            release(runtime, c)
        if step == 9:
            release(runtime, a)
        record_cycle(runtime, report(runtime))
    release(runtime, b)
    clock.advance(30)
    record_cycle(runtime, report(runtime))
    return runtime


def invoke(root: click.Group, runtime: Runtime, *args: str) -> Result:
    return CliRunner(env={"SUDO_USER": None}).invoke(
        root, ["--config", str(runtime.config.source), "usage", *args]
    )


def test_totals_equal_the_sum_over_the_allocations(root, seeded) -> None:
    result = invoke(root, seeded, "--all", *WINDOW, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["scope"], data["by"]) == ("all users", "user")
    assert data["since"] == "2025-03-03T00:00:00Z"
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["ds01ta"]["gpu_eq_seconds"] == pytest.approx(300.0)
    assert rows["ds01tb"]["gpu_eq_seconds"] == pytest.approx(3 / 7 * 600 + 2 / 7 * 90)
    assert (rows["ds01ta"]["allocations"], rows["ds01tb"]["allocations"]) == (1, 2)
    assert data["total"]["gpu_eq_seconds"] == pytest.approx(300 + 3 / 7 * 600 + 2 / 7 * 90)
    assert data["total"]["gpu_hours"] == pytest.approx(data["total"]["gpu_eq_seconds"] / 3600)
    # b: GPM's 80 % from the second cycle on (the first read has no earlier sample)
    assert rows["ds01tb"]["efficiency"] is not None and 0 < rows["ds01tb"]["efficiency"] <= 0.8

    groups = json.loads(invoke(root, seeded, "--all", *WINDOW, "--by", "group", "--json").output)
    assert {r["key"]: r["gpu_eq_seconds"] for r in groups["rows"]} == pytest.approx(
        {"students": 300.0, "staff": 3 / 7 * 600 + 2 / 7 * 90}
    )
    days = json.loads(invoke(root, seeded, "--all", *WINDOW, "--by", "day", "--json").output)
    assert [r["key"] for r in days["rows"]] == ["2025-03-03"]
    assert days["rows"][0]["gpu_eq_seconds"] == pytest.approx(data["total"]["gpu_eq_seconds"])
    # per container (GREEN-01: energy per container too), the same total
    per = json.loads(invoke(root, seeded, "--all", *WINDOW, "--by", "container", "--json").output)
    assert {r["key"]: r["gpu_eq_seconds"] for r in per["rows"]} == pytest.approx(
        {"ds01ta/a": 300.0, "ds01tb/b": 3 / 7 * 600, "ds01tb/c": 2 / 7 * 90}, abs=1e-3
    )
    assert per["total"]["gpu_eq_seconds"] == pytest.approx(data["total"]["gpu_eq_seconds"])
    assert per["total"]["energy_kwh"] == pytest.approx(data["total"]["energy_kwh"])


def test_one_user_and_the_formats(root, seeded) -> None:
    mine = json.loads(invoke(root, seeded, "--user", "ds01tb", *WINDOW, "--json").output)
    assert [r["key"] for r in mine["rows"]] == ["ds01tb"]
    table = invoke(root, seeded, "--all", *WINDOW)
    assert table.exit_code == 0, table.output
    assert "GPU usage of all users, 2025-03-03T00:00:00Z to 2025-03-04T00:00:00Z:" in table.output
    assert "EFFICIENCY" in table.output and "\ntotal " in table.output
    lines = list(csv.reader(io.StringIO(invoke(root, seeded, "--all", *WINDOW, "--csv").output)))
    assert lines[0][:3] == ["key", "allocations", "gpu_hours"]
    assert [line[0] for line in lines[1:]] == ["ds01ta", "ds01tb", "total"]
    assert float(lines[1][2]) == pytest.approx(300 / 3600)
    # root's own usage (no --all): none
    assert json.loads(invoke(root, seeded, *WINDOW, "--json").output)["rows"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since: expected an ISO date or time"),
        (("--period", "week", "--since", "1d"), "--period cannot be combined with --since"),
        (("--since", "2025-03-04", "--until", "2025-03-03"), "must be after --since"),
        (("--json", "--csv"), "give --json or --csv, not both"),
        (("--all", "--user", "ds01ta"), "give at most one of --user, --group and --all"),
    ],
)
def test_bad_options_are_usage_errors(root, seeded, args, message) -> None:
    result = invoke(root, seeded, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_plain_user_may_see_only_their_own(seeded, unix_users) -> None:
    caller = Caller("ds01ta", unix_users["ds01ta"].uid, admin=False)
    ctx = ServiceContext(seeded, caller)
    for params in ({"user": "ds01tb"}, {"all": True}, {"group": "staff"}):
        with pytest.raises(Forbidden) as refused:
            call(ctx, "accounting.usage", since="2025-03-03", until="2025-03-04", **params)
        assert "you are ds01ta" in refused.value.message
    mine = call(ctx, "accounting.usage", since="2025-03-03", until="2025-03-04")
    assert [r["key"] for r in mine["rows"]] == ["ds01ta"]


def test_periods_are_calendar_periods_in_utc() -> None:
    now = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.UTC)  # a Thursday
    assert period_start("week", now) == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert period_start("month", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert period_start("year", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert period_start("term", now) == dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    terms = ["2026-09-28", "2027-01-11", "2026-04-20"]
    assert period_start("term", now, terms) == dt.datetime(2026, 9, 28, tzinfo=dt.UTC)
    assert window(now, since="2d") == (now - dt.timedelta(days=2), now)
    assert window(now) == (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now)


def test_the_distribution_and_its_section() -> None:
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    assert (project["name"], project["dependencies"]) == ("ds01-accounting", ["ds01>=0.1,<0.2"])
    assert project["entry-points"]["ds01"] == {"accounting": "ds01_accounting"}
    found = [ep for ep in md.entry_points(group="ds01") if ep.name == "accounting"]
    record = make_plugin_host(entry_points=EntryPointSource(lambda: found)).record("accounting")
    assert record is not None and record.status == "active"
    assert {"cycle_finished", "service_operations", "add_cli_commands"} <= set(record.hooks)
    with pytest.raises(ConfigError) as info:
        build_config(
            {"plugins": {"accounting": {"term_starts": ["2026-09-28", "28.9.2026"]}}},
            sections={"accounting": AccountingConfig},
        )
    assert [str(p) for p in info.value.problems] == [
        "plugins.accounting.term_starts[1]: expected a date like 2026-09-28, got '28.9.2026'"
    ]
