"""``ds01 admin ldap …``: run a sync by hand (dry run, confirm a held one) and explain a user.

Imported only when the CLI adds its commands, so the daemon never loads click's command tree
for this plugin.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_ldap.config import advice
from ds01_ldap.lookup import explain
from ds01_ldap.store import iso, read_pending
from ds01_ldap.sync import CONFIRM_HINT, SyncOutcome, config_of, run_sync


@click.group("ldap")
def ldap() -> None:
    """Group membership from LDAP / Active Directory (plugin ds01-ldap)."""


def _require_enabled(state: CliState) -> None:
    cfg = config_of(state.runtime)
    if cfg is None or not cfg.enabled:
        fail("plugins.ldap maps no groups or names no servers: nothing to sync", 2)


def _status(held: bool, applied: bool) -> str:
    if held:
        return "held"
    return "applied" if applied else "would apply"


def _print_outcome(outcome: SyncOutcome, dry_run: bool) -> None:
    plan = outcome.plan
    assert plan is not None
    label = " (dry run: nothing changed)" if dry_run else ""
    click.echo(f"LDAP sync from {outcome.server}{label}")
    print_table(
        [(c.user, c.before, c.after, _status(c.held, outcome.applied)) for c in plan.changes],
        ["user", "from", "to", "status"],
    )
    for group, users in plan.joins().items():
        click.echo(f"join {group}: {', '.join(users)}")
    for group, users in plan.leaves().items():
        click.echo(f"leave {group}: {', '.join(users)}")
    for shrink in plan.held.values():
        click.echo(f"held: {shrink.describe(plan.max_removal_share)}")
    if plan.held:
        click.echo(f"Review the held changes, then apply them with: {CONFIRM_HINT}")
    verb = "applied" if outcome.applied else "to apply"
    click.echo(
        f"{len(plan.to_apply)} change(s) {verb}, {len(plan.held_changes)} held; "
        f"{len(plan.desired)} user(s) in mapped LDAP groups"
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
    admin_name = None
    if not dry_run:
        from ds01_core.cli.admin_cmd import require_admin

        admin_name = require_admin()
    _require_enabled(state)
    runtime = state.runtime
    cfg = config_of(runtime)
    assert cfg is not None
    for note in advice(cfg, runtime.config.limits.groups):
        click.echo(f"Warning: {note}", err=True)
    outcome = run_sync(runtime, dry_run=dry_run, confirm=confirm)
    for event in [] if dry_run else outcome.events:  # a dry run records nothing
        event.details["by"] = admin_name
        runtime.events.append(event)
    if as_json:
        print_json({"dry_run": dry_run, "confirm": confirm, **outcome.to_json()})
    elif outcome.error is None:
        _print_outcome(outcome, dry_run)
    if outcome.error is not None:
        fail(f"{outcome.error}; the last known membership stays in force")


@ldap.command("show")
@click.argument("user")
@json_option
@pass_state
def show(state: CliState, user: str, as_json: bool) -> None:
    """USER's mapped LDAP groups (from the last sync), their ds01 group, and why."""
    runtime = state.runtime
    found = explain(runtime, user)
    if found is None:
        fail("plugins.ldap maps no groups", 2)
    cfg = config_of(runtime)
    assert cfg is not None
    try:
        pending = read_pending(runtime.state.db) is not None
    except (sqlite3.Error, OSError):  # no table before the first sync
        pending = False
    last = found.last_sync
    data: dict[str, Any] = {
        "user": found.user,
        "ds01_group": found.group,
        "ldap_groups": [
            {
                "ds01_group": group,
                "ldap_group": ldap_group,
                "precedence": cfg.groups[group].precedence if group in cfg.groups else None,
            }
            for group, ldap_group in found.ldap_groups.items()
        ],
        "explanation": found.reason,
        "synced_at": found.synced_at,
        "last_sync": iso(last.last_success) if last and last.last_success else None,
        "last_error": last.last_error if last else None,
        "server": last.server if last else None,
        "sync_held": pending,
    }
    if as_json:
        print_json(data)
        return
    click.echo(f"user:        {found.user}")
    click.echo(f"ds01 group:  {found.group or '- (the configuration file decides)'}")
    click.echo(f"why:         {found.reason}")
    if data["ldap_groups"]:
        print_table(
            [(g["ds01_group"], g["precedence"], g["ldap_group"]) for g in data["ldap_groups"]],
            ["ds01 group", "precedence", "ldap group"],
        )
    if data["last_error"]:
        click.echo(f"last sync attempt failed: {data['last_error']}")
    if pending:
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
