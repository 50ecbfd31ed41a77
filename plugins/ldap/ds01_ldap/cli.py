"""``ds01 admin ldap …``: run a sync by hand (dry run, confirm a held one) and explain a user.

The commands only render: the admin rule and the work are the operations in
:mod:`ds01_ldap.services` (in-process for root, through the API socket for everyone else).
Imported only when the CLI adds its commands, so the daemon never loads click's command tree
for this plugin.
"""

from __future__ import annotations

from typing import Any

import click

from ds01_core.api import CliState, fail, json_option, pass_state, print_json, print_table
from ds01_ldap.sync import CONFIRM_HINT


@click.group("ldap")
def ldap() -> None:
    """Group membership from LDAP / Active Directory (plugin ds01-ldap; admins)."""


def _status(change: dict[str, Any], applied: bool) -> str:
    if change["held"]:
        return "held"
    return "applied" if applied else "would apply"


def _print_outcome(data: dict[str, Any]) -> None:
    label = " (dry run: nothing changed)" if data["dry_run"] else ""
    changes = data["changes"]
    click.echo(f"LDAP sync from {data['server']}{label}")
    print_table(
        [(c["user"], c["from"], c["to"], _status(c, data["applied"])) for c in changes],
        ["user", "from", "to", "status"],
    )
    for group, users in data["joins"].items():
        click.echo(f"join {group}: {', '.join(users)}")
    for group, users in data["leaves"].items():
        click.echo(f"leave {group}: {', '.join(users)}")
    limit = data["max_removal_share"]
    for group, shrink in data["held_groups"].items():
        click.echo(
            f"held: {group}: would remove {shrink['removing']} of {shrink['members']} members "
            f"({shrink['share']:.0%} > {limit:.0%})"
        )
    if data["held_groups"]:
        click.echo(f"Review the held changes, then apply them with: {CONFIRM_HINT}")
    held = sum(1 for c in changes if c["held"])
    verb = "applied" if data["applied"] else "to apply"
    click.echo(
        f"{len(changes) - held} change(s) {verb}, {held} held; "
        f"{data['users']} user(s) in mapped LDAP groups"
    )


@ldap.command("sync")
@click.option("--dry-run", is_flag=True, help="Show who would join and leave; change nothing.")
@click.option(
    "--confirm",
    is_flag=True,
    help="Apply removals held because they exceed max_removal_share of a group.",
)
@json_option
@pass_state
def sync(state: CliState, dry_run: bool, confirm: bool, as_json: bool) -> None:
    """Read the directory now and update who is in which ds01 group.

    With --dry-run --confirm: show everything a confirmed sync would apply.
    """
    data = state.call("ldap.sync", dry_run=dry_run, confirm=confirm)
    for note in data["warnings"]:
        click.echo(f"Warning: {note}", err=True)
    if as_json:
        print_json(data)
    elif data["error"] is None:
        _print_outcome(data)
    if data["error"] is not None:
        fail(f"{data['error']}; the last known membership stays in force")


@ldap.command("show")
@click.argument("user")
@json_option
@pass_state
def show(state: CliState, user: str, as_json: bool) -> None:
    """USER's mapped LDAP groups (from the last sync), their ds01 group, and why."""
    data = state.call("ldap.show", user=user)
    if as_json:
        print_json(data)
        return
    click.echo(f"user:        {data['user']}")
    click.echo(f"ds01 group:  {data['ds01_group'] or '- (the configuration file decides)'}")
    click.echo(f"why:         {data['explanation']}")
    if data["ldap_groups"]:
        print_table(
            [(g["ds01_group"], g["precedence"], g["ldap_group"]) for g in data["ldap_groups"]],
            ["ds01 group", "precedence", "ldap group"],
        )
    if data["last_error"]:
        click.echo(f"last sync attempt failed: {data['last_error']}")
    if data["sync_held"]:
        click.echo(f"a sync is held for confirmation: {CONFIRM_HINT}")


def add_commands(cli: click.Group) -> None:
    """Put ``ldap`` under ``ds01 admin`` (these are admin commands), or at the top level when
    the core has no ``admin`` group; a name already taken there is refused, never replaced."""
    admin = cli.commands.get("admin")
    parent = admin if isinstance(admin, click.Group) else cli
    existing = parent.commands.get("ldap")
    if existing is not None and existing is not ldap:
        where = "admin ldap" if parent is admin else "ldap"
        raise ValueError(f"the command name {where!r} is already taken")
    parent.add_command(ldap)
