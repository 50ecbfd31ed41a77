"""``ds01 admin base-updates``: which catalogue bases have a newer tag (``--check``: ask now)."""

from __future__ import annotations

from typing import Any

import click

from ds01_core.api import CliState, pass_state, print_json, print_table


@click.command("base-updates")
@click.option("--check", "check_now", is_flag=True, help="Ask the registries now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def base_updates(state: CliState, check_now: bool, as_json: bool) -> None:
    """Newer tags of the catalogue's bases, as the daemon last saw them (admins).

    The daemon asks every `plugins.projects.base_updates.interval` and tells the admins once
    per newer tag; change `plugins.projects.catalogue.<key>.tag` to offer it to users.
    """
    data = state.call("projects.base_updates", check_now=check_now, client_timeout=300.0)
    if as_json:
        print_json(data)
        return
    render(data)


def render(data: dict[str, Any]) -> None:
    bases = data.get("bases") or {}
    if not bases:
        click.echo("not checked yet (ds01d checks when it starts; --check asks now)")
        return
    rows = []
    for key, base in sorted(bases.items()):
        if base.get("error"):
            news = f"cannot check: {base['error']}"
        else:
            news = base.get("newest") or "up to date"
        rows.append((key, base["image"], base["tag"], news))
    print_table(rows, ["base", "image", "tag", "newer tag"], shrinkable=[3])
    click.echo(f"checked at {data.get('checked_at')}" + ("" if data.get("enabled") else " (off)"))


def add_to(cli: click.Group) -> None:
    """Under ``ds01 admin`` (at the top when there is no admin group)."""
    admin = cli.commands.get("admin")
    parent = admin if isinstance(admin, click.Group) else cli
    if parent.commands.get("base-updates") is not base_updates:
        parent.add_command(base_updates)
