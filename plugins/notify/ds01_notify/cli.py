"""``ds01 notify prefs`` and ``ds01 notify test``: a user's channels, and a test notice.

Imported only when the CLI adds its commands, so the daemon never loads click's command tree
for this plugin.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.containers import caller_identity
from ds01_core.model import Event, Notice
from ds01_core.users import normalize_username
from ds01_notify.config import CHANNELS, NotifyConfig
from ds01_notify.dispatch import config_of, only_channels
from ds01_notify.prefs import PrefsError, change, chosen_channels, describe
from ds01_notify.text import iso

STORE_HINT = "run it with sudo"


@click.group("notify")
def notify() -> None:
    """How ds01 tells you things: your channels, and a test notice (plugin ds01-notify)."""


def _target_user(for_user: str | None) -> tuple[str, str]:
    """(the user acted on, the caller); ``--user`` is for admins, checked before anything
    is loaded."""
    caller, admin = caller_identity()
    if for_user is None:
        return caller, caller
    if not admin:
        fail(f"--user is for admins; you are {caller}", code=2)
    return normalize_username(for_user), caller


def _config(state: CliState) -> NotifyConfig:
    cfg = config_of(state.runtime)
    if cfg is None:
        fail("the notify plugin has no configuration section (is it disabled?)", code=2)
    return cfg


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
    user, caller = _target_user(for_user)
    cfg = _config(state)
    runtime = state.runtime
    try:
        made = change(runtime, cfg, user, enable=enable, disable=disable, by=caller)
        if made:
            runtime.events.append(
                Event(
                    "notify.prefs_changed",
                    user=user,
                    source="notify",
                    details={
                        "enabled": sorted(k for k, v in made.items() if v),
                        "disabled": sorted(k for k, v in made.items() if not v),
                        "by": caller,
                    },
                )
            )
        rows = describe(runtime, cfg, user)
    except PrefsError as exc:
        fail(str(exc), code=2)
    except (sqlite3.Error, OSError) as exc:
        fail(f"cannot reach the notification preferences ({exc}): {STORE_HINT}")
    if as_json:
        print_json({"user": user, "channels": [row.to_json() for row in rows]})
        return
    click.echo(f"Notification channels for {user}:")
    print_table(
        [
            (
                row.channel,
                "yes" if row.available else "no",
                "on" if row.chosen else "off",
                "yes" if row.used else "no",
                row.detail,
            )
            for row in rows
        ],
        ["channel", "admin enabled", "your choice", "used", "where"],
    )


def _test_notice(user: str, container: str | None, channel: str | None) -> Notice:
    via = f"the {channel} channel" if channel else "every channel you have on"
    return Notice(
        user=user,
        subject="Test notice",
        message=(
            f"This is a test notice from ds01 through {via}, sent by `ds01 notify test` at "
            f"{iso(dt.datetime.now(dt.UTC))}. If you can read it, the channel reaches you."
        ),
        severity="info",
        container=container,
        event_type="notify.test",
    )


def _check_channel(state: CliState, cfg: NotifyConfig, user: str, channel: str) -> None:
    if channel not in cfg.enabled_channels():
        offer = ", ".join(cfg.enabled_channels()) or "none"
        fail(f"{channel} is not enabled on this server by the admin; enabled: {offer}", code=2)
    try:
        chosen = chosen_channels(state.runtime, cfg, user)
    except (sqlite3.Error, OSError) as exc:
        fail(f"cannot read your notification preferences ({exc}): {STORE_HINT}")
    if channel not in chosen:
        fail(
            f"you turned {channel} off; turn it on with: ds01 notify prefs --enable {channel}",
            code=2,
        )


def _container_id(state: CliState, user: str, name: str) -> str:
    """One of the caller's containers (never another user's: the write happens as root)."""
    from ds01_core.containers import ContainerError, ContainerService
    from ds01_core.docker import DockerError

    try:
        return ContainerService(state.runtime, user).find(name).id
    except ContainerError as exc:
        fail(str(exc))
    except DockerError as exc:
        fail(f"Docker: {exc}")


@notify.command("test")
@click.option(
    "--channel", type=click.Choice(CHANNELS), help="Only this channel (default: all yours)."
)
@click.option(
    "--container",
    metavar="NAME",
    help="A container of yours, for the container_file channel.",
)
@json_option
@pass_state
def test(state: CliState, channel: str | None, container: str | None, as_json: bool) -> None:
    """Send yourself a test notice, and show how each channel fared."""
    from ds01_core.pipeline import tell_user

    user, _admin = caller_identity()
    cfg = _config(state)
    if channel:
        _check_channel(state, cfg, user, channel)
    if channel == "container_file" and not container:
        fail("--channel container_file needs --container NAME: the file is in a container", 2)
    container_id = _container_id(state, user, container) if container else None
    runtime = state.runtime
    try:
        with only_channels(runtime, {channel} if channel else None):
            results = tell_user(runtime, _test_notice(user, container_id, channel))
    except (sqlite3.Error, OSError) as exc:
        fail(f"cannot send ({exc}): {STORE_HINT}")
    data: list[dict[str, Any]] = [
        {"channel": r.channel, "delivered": r.delivered, "detail": r.detail} for r in results
    ]
    if as_json:
        print_json({"user": user, "results": data})
    else:
        print_table(
            [(r.channel, "yes" if r.delivered else "NO", r.detail) for r in results],
            ["channel", "delivered", "detail"],
        )
    if any(not r.delivered for r in results):
        raise SystemExit(1)


def add_commands(cli: click.Group) -> None:
    """Add ``notify`` at the top level (a user command); a name already taken is refused."""
    existing = cli.commands.get("notify")
    if existing is not None and existing is not notify:
        raise ValueError("the command name 'notify' is already taken")
    cli.add_command(notify)
