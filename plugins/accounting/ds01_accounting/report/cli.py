"""``ds01 report monthly``: the usage report for a month, term, year or any window (admins).

The command only renders: the operation ``accounting.report`` (:mod:`.services`) checks that
the caller is an admin, computes the figures and, with ``--send``, delivers them. The report
goes to stdout in the chosen format; how each delivery went goes to stderr, so that
``--format csv > nov.csv`` stays a clean file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ds01_accounting.report.period import PERIODS
from ds01_accounting.report.render import FORMATS, render
from ds01_core.api import CliState, fail, pass_state


@click.group("report")
def report() -> None:
    """Usage reports for admins: GPU-hours, efficiency, waste, peak demand, queue waits,
    energy and CO2 (plugin ds01-accounting)."""


@report.command("monthly")
@click.option("--month", metavar="YYYY-MM", help="The calendar month (default: the last one).")
@click.option(
    "--period",
    type=click.Choice(PERIODS),
    help="The last complete month, term (plugins.accounting.term_starts) or year.",
)
@click.option("--since", metavar="DATE", help="Start of a window of your own (2026-09-01).")
@click.option("--until", metavar="DATE", help="End of that window, not included (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="How to print the report.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--top", type=int, metavar="N", help="Users in the top-consumers table.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--send",
    is_flag=True,
    help="Also send it to plugins.accounting.report.recipients (e-mail, webhooks).",
)
@pass_state
def monthly(
    state: CliState,
    month: str | None,
    period: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    as_json: bool,
    top: int | None,
    output: Path | None,
    send: bool,
) -> None:
    """The usage report for last month, or for --month, --period or --since/--until.

    \b
    Examples:
      ds01 report monthly                       # last calendar month, as text
      ds01 report monthly --month 2026-10 --format markdown
      ds01 report monthly --period term --format csv -o term.csv
      ds01 report monthly --send                # what the monthly timer runs
    """
    if sys.stderr.isatty():
        click.echo("Reading the usage records and the audit log ...", err=True)
    data: dict[str, Any] = state.call(
        "accounting.report",
        month=month,
        period=period,
        since=since,
        until=until,
        top=top,
        send=send,
    )
    text = render(data["report"], "json" if as_json else fmt)
    if output is not None:
        try:
            output.write_text(text)
        except OSError as exc:
            fail(f"--output: cannot write {output}: {exc.strerror}", 2)
    else:
        click.echo(text, nl=False)
    sent = data.get("sent")
    if sent is None:
        return
    for entry in sent:
        mark = "sent" if entry["delivered"] else "FAILED"
        click.echo(
            f"{mark}: {data['subject']!r} to {entry['recipient']} via {entry['channel']}: "
            f"{entry['detail']}",
            err=True,
        )
    if not sent or any(not entry["delivered"] for entry in sent):
        raise SystemExit(1)


def add_commands(cli: click.Group) -> None:
    """Add ``report`` at the top level; a name already taken is refused."""
    existing = cli.commands.get("report")
    if existing is not None and existing is not report:
        raise ValueError("the command name 'report' is already taken")
    cli.add_command(report)
