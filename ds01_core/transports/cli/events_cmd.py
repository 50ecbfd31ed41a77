"""``ds01 events``: query and follow the audit log."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from ds01_core.domain.audit_log import event_time, parse_time
from ds01_core.domain.model import utc_text
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


class TimeParam(click.ParamType):
    """An ISO date/time or an age (``2h`` = two hours ago); a bad value is a usage error.

    A time without an offset is local time, like the TIME column, so a time copied from the
    table selects what the table showed.
    """

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_time(str(value), local=True)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _details(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if value is None or value == [] or value == {}:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _row(record: dict[str, Any]) -> tuple[str, ...]:
    local = event_time(record).astimezone()
    return (
        local.strftime("%m-%d %H:%M:%S"),
        record["event_type"],
        record.get("user") or "-",
        record.get("source") or "-",
        _details(record.get("details") or {}),
    )


@click.command()
@click.option("--user", metavar="NAME", help="Only events about NAME.")
@click.option(
    "--type",
    "type_prefix",
    metavar="PREFIX",
    help="Only event types starting with PREFIX (gpu. or gpu.allocated).",
)
@click.option(
    "--container", metavar="NAME|ID", help="Only events about this container (name, or id prefix)."
)
@click.option(
    "--since",
    type=TimeParam(),
    help="From this time: ISO, local unless it ends in Z or an offset (2026-11-22, "
    "2026-11-22T10:00, 2026-11-22T09:00Z), or an age (30m, 2h, 1d).",
)
@click.option("--until", type=TimeParam(), help="Up to this time, same forms as --since.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show the last N matches.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they are written.")
@json_option
@pass_state
def events(
    state: CliState,
    user: str | None,
    type_prefix: str | None,
    container: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """Show the audit log, newest last.

    \b
    Examples:
      ds01 events --user alice --since 2h
      ds01 events --type gpu. --json
      ds01 events --container train-1 --since 2026-11-20 --until 2026-11-21
      ds01 events -f --type lifecycle.

    Times are local, as in the TIME column, unless given with Z or an offset.
    Unreadable lines are skipped with a warning on stderr. With --follow and --json, one JSON
    object is printed per line (JSON Lines).
    """
    filters: dict[str, Any] = {
        "user": user,
        "type": type_prefix,
        "container": container,
        "since": _utc(since),
        "until": _utc(until),
    }
    answer = state.call("events.query", limit=limit, **filters)
    for message in answer["warnings"]:
        click.echo(f"warning: {message}", err=True)
    records = answer["events"]
    if as_json and not follow:
        print_json(records)
        return
    if as_json:
        for record in records:
            click.echo(json.dumps(record, separators=(",", ":")))
    elif records or not follow:
        print_table(
            [_row(r) for r in records],
            ["time", "type", "user", "source", "details"],
            shrinkable=[4],
        )
    if not follow:
        return
    try:
        for record in state.stream("events.follow", **filters):
            if as_json:
                click.echo(json.dumps(record, separators=(",", ":")))
            else:
                click.echo("  ".join(_row(record)))
    except KeyboardInterrupt:
        return


def _utc(moment: dt.datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)
