"""``ds01 keepalive``: keep one of your containers from being stopped for idleness, for a while."""

from __future__ import annotations

import datetime as dt

import click

from ds01_core.transports.cli.container_cmd import DurationParam, as_option
from ds01_core.transports.cli.output import json_option, print_json
from ds01_core.transports.cli.state import CliState, pass_state


@click.command()
@click.argument("container")
@click.option(
    "--for",
    "duration",
    type=DurationParam(),
    default=2 * 3600.0,
    show_default="2h",
    help="How long (at most lifecycle.keepalive_max).",
)
@as_option
@json_option
@pass_state
def keepalive(
    state: CliState, container: str, duration: float, as_user: str | None, as_json: bool
) -> None:
    """Keep your container CONTAINER from being stopped for idleness for --for (default 2h).

    Maximum runtimes still apply. The keep-alive ends by itself; it is in the audit log.
    """
    data = state.call("containers.keepalive", name=container, seconds=duration, user=as_user)
    if as_json:
        print_json(data)
        return
    until = dt.datetime.fromisoformat(data["until"].replace("Z", "+00:00"))
    click.echo(
        f"{data['container']} will not be stopped for idleness until {until:%Y-%m-%d %H:%M}Z"
    )
