"""``ds01 mlflow status|share|unshare`` and ``ds01 admin mlflow sync``: the commands render;
the work and the rules are the operations (:mod:`ds01_mlflow.ops`, :mod:`ds01_mlflow.sync`),
in-process for root and through the API socket for everyone else."""

from __future__ import annotations

from typing import Any

import click

from ds01_core.api import CliState, fail, json_option, pass_state, print_json, print_table
from ds01_mlflow.config import PERMISSIONS  # not the client: `ds01 --help` loads no HTTP library


@click.group("mlflow")
def mlflow() -> None:
    """Experiment tracking: the MLflow server, your account, sharing experiments."""


@mlflow.command("status")
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """The MLflow server, the URL to open, your account and what you can see there."""
    data = state.call("mlflow.status")
    if as_json:
        print_json(data)
    else:
        click.echo(f"MLflow server:    up at {data['url']}")
        if data["container_url"] != data["url"]:
            click.echo(f"in containers:    {data['container_url']}")
        account = "yes" if data["account"] else "none yet"
        click.echo(f"your account:     {data['user']}: {account}")
        if data["credentials_file"]:
            click.echo(f"credentials:      {data['credentials_file']}")
        if data["experiments"] is not None:
            click.echo(
                f"you can see:      {data['experiments']} experiment(s), {data['runs']} run(s)"
            )
    if data["advice"]:
        if data["credentials_accepted"] is False:
            fail(data["advice"])
        click.echo(f"Note: {data['advice']}", err=as_json)


@mlflow.command("share")
@click.argument("experiment")
@click.argument("user")
@click.option(
    "--permission",
    type=click.Choice(PERMISSIONS, case_sensitive=False),
    default="READ",
    show_default=True,
    help="READ: see it; USE/EDIT: log to it; MANAGE: also share it.",
)
@pass_state
def share(state: CliState, experiment: str, user: str, permission: str) -> None:
    """Give USER PERMISSION on EXPERIMENT (a name, or an id), which you manage."""
    data = state.call("mlflow.share", experiment=experiment, user=user, permission=permission)
    was = f" (was {data['before']})" if data["before"] else ""
    click.echo(
        f"shared {data['experiment']} (id {data['experiment_id']}) with {data['user']}: "
        f"{data['permission']}{was}"
    )


@mlflow.command("unshare")
@click.argument("experiment")
@click.argument("user")
@pass_state
def unshare(state: CliState, experiment: str, user: str) -> None:
    """Take USER's permission on EXPERIMENT (a name, or an id), which you manage, away."""
    data = state.call("mlflow.unshare", experiment=experiment, user=user)
    if data["removed"] is None:
        click.echo(f"{data['user']} had no permission on {data['experiment']}: nothing to do")
    else:
        click.echo(f"unshared {data['experiment']} from {data['user']} (had {data['removed']})")


@click.group("mlflow")
def mlflow_admin() -> None:
    """The MLflow accounts of ds01's users (admins)."""


@mlflow_admin.command("sync")
@click.option("--user", "user", metavar="NAME", help="Only this user.")
@click.option("--rotate", is_flag=True, help="Give every synced account a new password.")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@json_option
@pass_state
def sync(state: CliState, user: str | None, rotate: bool, dry_run: bool, as_json: bool) -> None:
    """An MLflow account and credential file for every ds01 user (or NAME); members of the
    admin group are MLflow admins, nobody else is."""
    data: dict[str, Any] = state.call(
        "admin.mlflow.sync", user=user, rotate=rotate, dry_run=dry_run
    )
    for note in data["warnings"]:
        click.echo(f"Warning: {note}", err=True)
    if as_json:
        print_json(data)
        return
    rows = [
        (r["user"], "yes" if r["admin"] else "no", ", ".join(r["done"]) or "up to date")
        for r in data["users"]
    ]
    print_table(rows, ["user", "admin", "would do" if dry_run else "done"])
    changed = sum(1 for r in data["users"] if r["done"])
    label = " (dry run: nothing changed)" if dry_run else ""
    click.echo(f"{changed} of {len(rows)} account(s) changed{label}")


def add_commands(cli: click.Group) -> None:
    """``ds01 mlflow`` and ``ds01 admin mlflow`` (``ds01 mlflow sync`` when the core has no
    admin group); a name already taken is refused, never replaced."""
    admin = cli.commands.get("admin")
    places = [(cli, mlflow)]
    if isinstance(admin, click.Group):
        places.append((admin, mlflow_admin))
    elif "sync" not in mlflow.commands:
        mlflow.add_command(sync)
    for group, command in places:
        existing = group.commands.get("mlflow")
        if existing is not None and existing is not command:
            raise ValueError(f"the command name {group.name} mlflow is already taken")
        group.add_command(command)
