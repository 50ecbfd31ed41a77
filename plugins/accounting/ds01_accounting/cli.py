"""``ds01 usage``: GPU-hours, efficiency, idle GPU-hours, energy and CO2 as a table, JSON or CSV.

The command only renders: the operation (:mod:`ds01_accounting.services`) decides whose usage
a caller may see, in-process for root and through the API socket for everyone else.
"""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from ds01_accounting.periods import PERIODS
from ds01_accounting.sums import BY
from ds01_core.api import CliState, fail, pass_state, print_json, print_table

#: the CSV and JSON columns, in order
COLUMNS = (
    "key",
    "allocations",
    "gpu_hours",
    "efficiency",
    "idle_gpu_hours",
    "energy_kwh",
    "co2_kg",
    "gpu_eq_seconds",
    "busy_gpu_eq_seconds",
    "known_gpu_eq_seconds",
)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _line(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["key"],
        str(row["allocations"]),
        _number(row["gpu_hours"], 2),
        _percent(row["efficiency"]),
        _number(row["idle_gpu_hours"], 2),
        _number(row["energy_kwh"], 3),
        _number(row["co2_kg"], 3),
    )


@click.command("usage")
@click.option("--user", "for_user", metavar="NAME", help="Another user's usage (admins only).")
@click.option("--group", metavar="GROUP", help="A group's usage (admins only).")
@click.option("--all", "everyone", is_flag=True, help="Everyone's usage (admins only).")
@click.option(
    "--since", metavar="TIME", help="From TIME: 2026-09-01, 2026-09-01T08:00Z, or 7d ago."
)
@click.option("--until", metavar="TIME", help="Until TIME (default: now).")
@click.option("--period", type=click.Choice(PERIODS), help="This week, month, term, year, or all.")
@click.option(
    "--by",
    type=click.Choice(BY),
    default=None,
    help="One line per user (default), group, container (user/name), or period.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one line per row, then the total).")
@pass_state
def usage(
    state: CliState,
    for_user: str | None,
    group: str | None,
    everyone: bool,
    since: str | None,
    until: str | None,
    period: str | None,
    by: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """GPU-hours you (or, for admins, anyone) used: efficiency, idle time, energy and CO2.

    GPU-hours are GPU-equivalent-hours (a 1g MIG slice of 7 counts 1/7). Efficiency is busy
    GPU time / GPU time whose utilisation was read ("n/a": never read). Idle GPU-h: allocated
    while the container was idle. The default window is this month until now; times without
    an offset are UTC. Examples:

        ds01 usage --period term

        ds01 usage --all --period year --by group --csv
    """
    if as_json and as_csv:
        fail("give --json or --csv, not both", 2)
    data: dict[str, Any] = state.call(
        "accounting.usage",
        user=for_user,
        group=group,
        all=everyone,
        since=since,
        until=until,
        period=period,
        by=by,
    )
    if as_json:
        print_json(data)
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in [*data["rows"], data["total"]]:
            writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
        return
    click.echo(f"GPU usage of {data['scope']}, {data['since']} to {data['until']}:")
    lines = [_line(row) for row in data["rows"]]
    if lines:
        lines.append(_line(data["total"]))
    print_table(lines, [data["by"], "allocs", "GPU-h", "efficiency", "idle GPU-h", "kWh", "CO2 kg"])


def add_commands(cli: click.Group) -> None:
    cli.add_command(usage)
