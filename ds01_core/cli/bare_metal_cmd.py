"""``ds01 admin bare-metal``: time-limited GPU access outside containers (grant, revoke, list)."""

from __future__ import annotations

import click

from ds01_core.bare_metal import (
    BareMetalError,
    grant,
    list_grants,
    members_without_grant,
    revoke,
)
from ds01_core.cli import CliState, pass_state
from ds01_core.cli.admin_cmd import require_admin
from ds01_core.cli.container_cmd import DurationParam
from ds01_core.cli.output import fail, json_option, print_json, print_table


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
    admin_name = require_admin()
    runtime = state.runtime
    try:
        given = grant(runtime, user, duration, reason, admin_name)
    except BareMetalError as exc:
        fail(str(exc))
    group = runtime.config.bare_metal.group
    click.echo(
        f"{given.user} may use the GPUs directly until {given.expires:%Y-%m-%d %H:%M}Z "
        f"(grant {given.id}, group {group}); it applies from their next login "
        f"(or `newgrp {group}` in a running shell)"
    )


@bare_metal.command("revoke")
@click.argument("user")
@pass_state
def revoke_cmd(state: CliState, user: str) -> None:
    """End USER's direct GPU access now, and remove them from the group (also when ds01 has no
    grant on record: members added by hand are removed too)."""
    admin_name = require_admin()
    try:
        done = revoke(state.runtime, user, admin_name)
    except BareMetalError as exc:
        fail(str(exc))
    if done.grants:
        ended = f"ended grant(s) {', '.join(map(str, done.grants))} of {done.user}"
        click.echo(ended + (f"; removed from {done.group}" if done.membership_removed else ""))
    else:
        click.echo(f"{done.user} had no ds01 grant; removed from {done.group} anyway")
    click.echo(
        "programs already running keep the group until they end; the daemon reports their GPU "
        "use (and stops it with bare_metal.action: kill)"
    )


@bare_metal.command("list")
@json_option
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """Active grants, and members of the group who have none."""
    runtime = state.runtime
    grants = list_grants(runtime)
    stray = members_without_grant(runtime)
    if as_json:
        print_json(
            {
                "group": runtime.config.bare_metal.group,
                "grants": [g.to_json() for g in grants],
                "members_without_grant": stray,
            }
        )
        return
    print_table(
        [
            (g.id, g.user, f"{g.expires:%Y-%m-%d %H:%M}Z", g.granted_by, g.reason or "-")
            for g in grants
        ],
        ["id", "user", "expires", "by", "reason"],
        shrinkable=[4],
    )
    if stray:
        click.echo(
            f"in {runtime.config.bare_metal.group} without a grant (never expires): "
            + ", ".join(stray)
        )
