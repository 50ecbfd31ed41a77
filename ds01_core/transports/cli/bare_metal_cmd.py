"""``ds01 admin bare-metal``: time-limited GPU access outside containers (grant, revoke, list)."""

from __future__ import annotations

import click

from ds01_core.transports.cli.container_cmd import DurationParam
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.group("bare-metal")
def bare_metal() -> None:
    """Direct GPU access outside containers: time-limited membership of bare_metal.group."""


@bare_metal.command("grant")
@click.argument("user")
@click.argument("duration", required=False, type=DurationParam())
@click.option("--reason", default="", help="Why (kept in the audit log).")
@pass_state
def grant_cmd(state: CliState, user: str, duration: float | None, reason: str) -> None:
    """Let USER use the GPUs outside containers for DURATION (default
    bare_metal.default_duration). Granting again replaces the user's grant."""
    given = state.call("admin.bare_metal.grant", user=user, seconds=duration, reason=reason)
    group = given["group"]
    click.echo(
        f"{given['user']} may use the GPUs directly until {given['expires'][:16]}Z "
        f"(grant {given['id']}, group {group}); it applies from their next login "
        f"(or `newgrp {group}` in a running shell)"
    )


@bare_metal.command("revoke")
@click.argument("user")
@pass_state
def revoke_cmd(state: CliState, user: str) -> None:
    """End USER's direct GPU access now, and remove them from the group (also when ds01 has no
    grant on record: members added by hand are removed too)."""
    done = state.call("admin.bare_metal.revoke", user=user)
    if done["grants"]:
        ended = f"ended grant(s) {', '.join(map(str, done['grants']))} of {done['user']}"
        click.echo(
            ended + (f"; removed from {done['group']}" if done["membership_removed"] else "")
        )
    else:
        click.echo(f"{done['user']} had no ds01 grant; removed from {done['group']} anyway")
    click.echo(
        "programs already running keep the group until they end; the daemon reports their GPU "
        "use (and stops it with bare_metal.action: kill)"
    )


@bare_metal.command("list")
@json_option
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """Active grants, and members of the group who have none."""
    data = state.call("admin.bare_metal.list")
    if as_json:
        print_json(data)
        return
    print_table(
        [
            (g["id"], g["user"], g["expires"][:16] + "Z", g["granted_by"], g["reason"] or "-")
            for g in data["grants"]
        ],
        ["id", "user", "expires", "by", "reason"],
        shrinkable=[4],
    )
    if data["members_without_grant"]:
        click.echo(
            f"in {data['group']} without a grant (never expires): "
            + ", ".join(data["members_without_grant"])
        )
