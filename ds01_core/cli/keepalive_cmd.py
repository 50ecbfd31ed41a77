"""``ds01 keepalive``: keep one of your containers from being stopped for idleness, for a while."""

from __future__ import annotations

import datetime as dt

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.container_cmd import DurationParam, as_option, handles_errors, service
from ds01_core.cli.output import fail
from ds01_core.lifecycle import add_grant
from ds01_core.model import Event
from ds01_core.units import Duration


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
@pass_state
@handles_errors
def keepalive(state: CliState, container: str, duration: float, as_user: str | None) -> None:
    """Keep your container CONTAINER from being stopped for idleness for --for (default 2h).

    Maximum runtimes still apply. The keep-alive ends by itself; it is in the audit log.
    """
    svc = service(state, as_user)
    workload = svc.find(container)
    runtime = state.runtime
    cap = float(runtime.config.lifecycle.keepalive_max)
    if duration > cap:
        fail(f"--for {Duration(duration)} is longer than keepalive_max ({Duration(cap)})", code=2)
    now = runtime.now()
    until = now + dt.timedelta(seconds=duration)
    with runtime.state.transaction() as db:
        grant = add_grant(
            db, "keepalive", svc.user, f"container:{workload.id}", until, "keepalive", svc.user, now
        )
    runtime.events.append(
        Event(
            "lifecycle.keepalive",
            svc.user,
            "cli",
            {
                "container": workload.name,
                "container_id": workload.id,
                "until": until.isoformat(),
                "grant": grant,
            },
        )
    )
    click.echo(f"{workload.name} will not be stopped for idleness until {until:%Y-%m-%d %H:%M}Z")
