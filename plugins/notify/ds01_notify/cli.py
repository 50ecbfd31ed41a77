"""``ds01 notify prefs`` and ``ds01 notify test``: a user's channels, and a test notice.

The commands only render: the operations (:mod:`ds01_notify.services`) decide whose channels
a caller may see and change, in-process for root and through the API socket for everyone
else. Imported only when the CLI adds its commands, so the daemon never loads click's command
tree for this plugin.
"""

from __future__ import annotations

from typing import Any

import click

from ds01_core.api import CliState, json_option, pass_state, print_json, print_table
from ds01_notify.config import CHANNELS


@click.group("notify")
def notify() -> None:
    """How ds01 tells you things: your channels, and a test notice (plugin ds01-notify)."""


@notify.command("prefs")
@click.option(
    "--enable", multiple=True, metavar="CHANNEL", help="Turn a channel on (repeat, or a,b)."
)
@click.option(
    "--disable", multiple=True, metavar="CHANNEL", help="Turn a channel off (repeat, or a,b)."
)
@click.option("--user", "for_user", metavar="NAME", help="Another user's channels (admins only).")
@json_option
@pass_state
def prefs(
    state: CliState,
    enable: tuple[str, ...],
    disable: tuple[str, ...],
    for_user: str | None,
    as_json: bool,
) -> None:
    """Show which channels reach you, or choose among those the admin enabled.

    Channels: terminal, container_file, email, webhook. Example:
    ds01 notify prefs --enable terminal --disable email
    """
    data = state.call(
        "notify.prefs", user=for_user, enable=list(enable) or None, disable=list(disable) or None
    )
    if as_json:
        print_json(data)
        return
    click.echo(f"Notification channels for {data['user']}:")
    print_table(
        [
            (
                row["channel"],
                "yes" if row["available"] else "no",
                "on" if row["chosen"] else "off",
                "yes" if row["used"] else "no",
                row["detail"],
            )
            for row in data["channels"]
        ],
        ["channel", "admin enabled", "your choice", "used", "where"],
    )


@notify.command("test")
@click.option(
    "--channel", type=click.Choice(CHANNELS), help="Only this channel (default: all yours)."
)
@click.option(
    "--container",
    metavar="NAME",
    help="A container of yours, for the container_file channel.",
)
@click.option("--user", "for_user", metavar="NAME", help="Send it to another user (admins only).")
@json_option
@pass_state
def test(
    state: CliState,
    channel: str | None,
    container: str | None,
    for_user: str | None,
    as_json: bool,
) -> None:
    """Send yourself a test notice, and show how each channel fared (exit 1 if one failed)."""
    data: dict[str, Any] = state.call(
        "notify.test", user=for_user, channel=channel, container=container
    )
    results = data["results"]
    if as_json:
        print_json(data)
    else:
        print_table(
            [(r["channel"], "yes" if r["delivered"] else "NO", r["detail"]) for r in results],
            ["channel", "delivered", "detail"],
        )
    if any(not r["delivered"] for r in results):
        raise SystemExit(1)


def add_commands(cli: click.Group) -> None:
    """Add ``notify`` at the top level (a user command); a name already taken is refused."""
    existing = cli.commands.get("notify")
    if existing is not None and existing is not notify:
        raise ValueError("the command name 'notify' is already taken")
    cli.add_command(notify)
