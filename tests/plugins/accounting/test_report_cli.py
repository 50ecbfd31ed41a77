"""``ds01 report monthly`` as root, in-process through click, over the fixture month written
into a real accounting store and audit log: the JSON equals the hand figures, every format
comes out and parses, ``-o`` writes a file, and bad options are one ``Error:`` line, exit 2."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import ds01_accounting
from ds01_core.framework.runtime import load_runtime
from tests.plugins.accounting.report_fixture import HAND
from tests.plugins.accounting.report_store import write_fixture_month


def fresh_cli() -> click.Group:
    """A copy of the ``ds01`` root group with the plugin's commands added."""
    from ds01_core.transports.cli import cli

    root = copy.copy(cli)
    root.commands = dict(cli.commands)
    ds01_accounting.add_cli_commands(cli=root)
    return root


@pytest.fixture
def config(tmp_config: Callable[..., Path]) -> Path:
    path = tmp_config({"plugins": {"accounting": {"report": {"top_n": 3}}}})
    runtime = load_runtime(str(path))
    try:
        assert "accounting" in runtime.config.plugins.sections  # loaded from its entry point
        write_fixture_month(runtime)
    finally:
        runtime.close()
    return path


def report(config: Path, *args: str) -> Result:
    return CliRunner(env={"SUDO_USER": None, "DS01_API_SOCKET": None}).invoke(
        fresh_cli(), ["--config", str(config), "report", "monthly", *args]
    )


def test_the_json_report_equals_the_hand_figures(config: Path) -> None:
    result = report(config, "--month", "2026-10", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    total = data["total"]
    for key in ("gpu_hours", "busy_gpu_hours", "known_gpu_hours", "efficiency", "idle_gpu_hours"):
        assert total[key] == pytest.approx(HAND[key]), key
    assert total["energy_kwh"] == pytest.approx(HAND["energy_kwh"])
    assert total["co2_kg"] == pytest.approx(HAND["co2_kg"])
    assert total["allocations"] == HAND["allocations"]
    assert data["active_users"] == HAND["active_users"]
    assert {u["name"]: u["gpu_hours"] for u in data["users"]} == pytest.approx(HAND["users"])
    assert [u["name"] for u in data["users"]] == list(HAND["users"])
    assert {g["name"]: g["gpu_hours"] for g in data["groups"]} == pytest.approx(HAND["groups"])
    assert (data["peak"]["gpu_equivalents"], data["peak"]["at"]) == HAND["peak"]
    assert data["queue"] == HAND["queue"]
    assert data["top"] == ["ds01tb", "ds01ta", "ds01tc"]  # report.top_n: 3
    by_user = {u["name"]: u for u in data["users"]}
    assert by_user["ds01tc"]["energy_kwh"] == pytest.approx(2.0)  # bio1's September GJ left out
    assert by_user["ds01td"]["energy_kwh"] is None


def test_every_format_comes_out_and_parses(config: Path, tmp_path: Path) -> None:
    text = report(config, "--month", "2026-10")
    assert text.exit_code == 0, text.output
    assert text.output.startswith("ds01 usage report 2026-10\n")
    markdown = report(config, "--month", "2026-10", "--format", "markdown", "--top", "1")
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.startswith("# ds01 usage report 2026-10\n")
    assert "## Top 1 consumers" in markdown.output
    out = tmp_path / "october.csv"
    written = report(config, "--month", "2026-10", "--format", "csv", "-o", str(out))
    assert written.exit_code == 0, written.output
    assert written.output == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert float(rows[0]["gpu_hours"]) == pytest.approx(HAND["gpu_hours"])
    assert [r["name"] for r in rows if r["scope"] == "user"] == list(HAND["users"])


def test_a_window_of_ones_own_and_a_month_with_nothing(config: Path) -> None:
    first_day = report(config, "--since", "2026-10-01", "--until", "2026-10-02", "--json")
    assert first_day.exit_code == 0, first_day.output
    data = json.loads(first_day.output)
    assert data["period"]["label"] == "2026-10-01 to 2026-10-01"
    # train 10h x 1.0 and bio1's 4h x 1.0 inside the day
    assert data["total"]["gpu_hours"] == pytest.approx(14.0)
    empty = json.loads(report(config, "--month", "2025-01", "--json").output)
    assert empty["total"]["gpu_hours"] == 0 and empty["users"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "Error: --month: expected a month like 2026-11, got '2026-13'\n"),
        (
            ["--month", "2026-10", "--period", "year"],
            "Error: --month cannot be combined with --period, --since or --until\n",
        ),
        (["--top", "0"], "Error: --top: must be 1 or more, got 0\n"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(config: Path, args: list[str], message: str) -> None:
    result = report(config, *args)
    assert result.exit_code == 2, result.output
    assert result.output.endswith(message)
    assert "Traceback" not in result.output


def test_an_unknown_period_is_refused_by_click(config: Path) -> None:
    result = report(config, "--period", "week")
    assert result.exit_code == 2
    assert "'week' is not one of 'month', 'term', 'year'" in result.output


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(fresh_cli(), ["report", "monthly", "--help"])
    assert result.exit_code == 0
    for option in ("--month", "--period", "--since", "--until", "--format", "--send", "--json"):
        assert option in result.output
