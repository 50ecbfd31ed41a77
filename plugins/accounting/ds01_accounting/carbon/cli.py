"""``ds01 carbon status`` and ``ds01 carbon report``: carbon intensity, and CO₂ per user.

The commands only render: the operations (:mod:`ds01_accounting.carbon.services`) ask the
provider and decide whose figures a caller sees, in-process for root and through ``ds01-api``
for everyone else. Imported only when the CLI adds its commands.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from typing import Any

import click

from ds01_accounting.periods import PERIODS
from ds01_core.api import (
    CliState,
    format_duration,
    json_option,
    pass_state,
    print_json,
    print_table,
)


@click.group("carbon")
def carbon() -> None:
    """The grid's carbon intensity and the CO₂ of GPU use (plugin ds01-accounting)."""


def _local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()


def chart(points: list[dict[str, Any]], width: int = 40) -> list[str]:
    """One line per hour: the hour (local time), a bar scaled to the largest value, the mean
    g/kWh of that hour's points; the lowest hour is marked."""
    hours: dict[dt.datetime, list[float]] = {}
    for point in points:
        start = _local(point["at"]).replace(minute=0, second=0, microsecond=0)
        hours.setdefault(start, []).append(float(point["grams_per_kwh"]))
    means = {hour: sum(values) / len(values) for hour, values in sorted(hours.items())}
    if not means:
        return []
    top = max(means.values()) or 1.0
    best = min(means, key=lambda hour: means[hour])
    lines = []
    for hour, value in means.items():
        bar = "█" * max(1, round(width * value / top)) if value > 0 else ""
        mark = "  ← lowest" if hour == best else ""
        lines.append(f"{hour:%a %H:%M}  {bar.ljust(width)}  {value:6.0f}{mark}")
    return lines


@carbon.command("status")
@click.option(
    "--hours",
    type=click.IntRange(1, 72),
    default=24,
    show_default=True,
    help="How far ahead to show.",
)
@json_option
@pass_state
def status(state: CliState, hours: int, as_json: bool) -> None:
    """Show the carbon intensity now (g CO₂-eq/kWh), where it comes from, how old it is, and
    the forecast where the source has one."""
    data: dict[str, Any] = state.call("accounting.carbon_status", hours=hours)
    if as_json:
        print_json(data)
        return
    now = data.get("intensity")
    if data["source"] == "none":
        click.echo("No carbon-intensity source is configured (plugins.accounting.carbon.source).")
        return
    if now is None:
        click.echo(f"Source {data['source']}: no value yet.")
    else:
        age = data.get("age_seconds")
        aged = "" if age is None else f", {format_duration(age)} old"
        stale = ""
        if now["stale"]:
            kept = "the configured value" if now["source"] == "fallback" else "the last good value"
            stale = f"  STALE (the source failed; {kept} is used)"
        click.echo(
            f"Carbon intensity: {now['grams_per_kwh']:g} g CO₂-eq/kWh from {now['source']} "
            f"(for {_local(now['at']):%Y-%m-%d %H:%M}{aged}){stale}"
        )
    if data.get("error"):
        click.echo(f"Last error: {data['error']} (failing since {data.get('failing_since')})")
    forecast = data.get("forecast") or []
    if forecast:
        click.echo(f"\nForecast, next {hours} h (local time, g CO₂-eq/kWh):")
        for line in chart(forecast):
            click.echo(line)
    elif data.get("forecast_error"):
        click.echo(f"No forecast: {data['forecast_error']}")
    else:
        click.echo("No forecast from this source.")


@carbon.command("report")
@click.option(
    "--since",
    metavar="TIME",
    help="From this time: 2026-11-01, 2026-11-01T08:00Z or a time ago (7d).",
)
@click.option("--until", metavar="TIME", help="Up to this time (default: now), same forms.")
@click.option(
    "--period",
    type=click.Choice(PERIODS),
    help="This calendar week, month, term or year so far, or everything (default: this month).",
)
@click.option("--by", type=click.Choice(["user", "group"]), default="user", show_default=True)
@click.option(
    "--user",
    "for_user",
    metavar="NAME",
    help="One user's figures (admins; others see only their own).",
)
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_state
def report(
    state: CliState,
    since: str | None,
    until: str | None,
    period: str | None,
    by: str,
    for_user: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Energy and CO₂ of GPU use per user or group: your own, or everyone's for admins.

    Example: ds01 carbon report --period month --by group
    """
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    data: dict[str, Any] = state.call(
        "accounting.carbon_report", since=since, until=until, period=period, by=by, user=for_user
    )
    if as_json:
        print_json(data)
        return
    columns = [
        by,
        "records",
        "energy_kwh",
        "co2_kg",
        "grams_per_kwh",
        "energy_without_intensity_kwh",
    ]
    rows = [[line[c] for c in columns] for line in data["rows"]]
    total = data["total"]
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return
    click.echo(
        f"CO₂ from {_local(data['since']):%Y-%m-%d %H:%M} to {_local(data['until']):%Y-%m-%d %H:%M}:"
    )
    print_table(
        [
            [
                r[0],
                r[1],
                f"{r[2]:.3f}",
                f"{r[3]:.3f}",
                "-" if r[4] is None else f"{r[4]:.0f}",
                f"{r[5]:.3f}",
            ]
            for r in rows
        ],
        [by, "records", "kWh", "kg CO₂", "g/kWh", "kWh no intensity"],
    )
    if rows:
        click.echo(
            f"Total: {total['energy_kwh']:.3f} kWh, {total['co2_kg']:.3f} kg CO₂-eq"
            + (
                ""
                if total["grams_per_kwh"] is None
                else f" ({total['grams_per_kwh']:.0f} g/kWh on average)"
            )
        )


def add_commands(cli: click.Group) -> None:
    """Add ``carbon`` at the top level; a name already taken is refused."""
    existing = cli.commands.get("carbon")
    if existing is not None and existing is not carbon:
        raise ValueError("the command name 'carbon' is already taken")
    cli.add_command(carbon)
