"""``ds01 admin``: commands for administrators (root, or members of ``gateway.admin_group``).

Every command calls an admin operation of the service layer, which refuses anyone else; an
admin who is not root reaches it through the API socket like any user.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ds01_core.domain.model import utc_text
from ds01_core.transports.cli.admin_gpu_cmd import admin_gpu
from ds01_core.transports.cli.admin_params import DateParam, allow_unknown_user_option
from ds01_core.transports.cli.bare_metal_cmd import bare_metal
from ds01_core.transports.cli.doctor_cmd import doctor
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.group()
def admin() -> None:
    """Administration: overrides, exemptions, bare-metal grants, labels, GPU release, the doctor."""


@admin.group()
def override() -> None:
    """Time-limited exceptions to a user's limits, with a reason on record."""


@override.command("set")
@click.argument("user")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option(
    "--expires",
    type=DateParam(),
    required=True,
    help="When it ends: a date or a duration from now (3d).",
)
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option("--approved-by", help="Who approved it [you].")
@allow_unknown_user_option
@pass_state
def override_set(
    state: CliState,
    user: str,
    assignments: tuple[str, ...],
    expires: dt.datetime,
    reason: str,
    approved_by: str | None,
    allow_unknown_user: bool,
) -> None:
    """Set limits for USER until --expires, e.g. max_gpu_equivalents=2 memory=128g."""
    done = state.call(
        "admin.override.set",
        user=user,
        assignments=list(assignments),
        expires=utc_text(expires),
        reason=reason,
        approved_by=approved_by,
        allow_unknown_user=allow_unknown_user,
    )
    click.echo(
        f"override(s) {', '.join(map(str, done['ids']))} set for {done['user']} until "
        f"{_time(done['expires']):%Y-%m-%d %H:%M}Z"
    )


@override.command("list")
@click.option("--user", help="Only this user's.")
@click.option("--all", "show_all", is_flag=True, help="Include expired and removed ones.")
@json_option
@pass_state
def override_list(state: CliState, user: str | None, show_all: bool, as_json: bool) -> None:
    """List overrides (active ones, unless --all)."""
    items = state.call("admin.override.list", user=user, all=show_all)
    if as_json:
        print_json([{k: v for k, v in o.items() if k not in ("shown", "status")} for o in items])
        return
    print_table(
        [
            (
                o["id"],
                o["user"],
                o["shown"],
                f"{_time(o['expires']):%Y-%m-%d %H:%M}Z",
                o["status"],
                o["approved_by"],
                o["reason"],
            )
            for o in items
        ],
        ["id", "user", "limit", "expires", "status", "approved by", "reason"],
        shrinkable=[6],
    )


@override.command("remove")
@click.argument("ids", nargs=-1, type=int)
@click.option("--user", help="Remove all of USER's active overrides (or only --key).")
@click.option("--key", help="With --user: only this limit.")
@pass_state
def override_remove(
    state: CliState, ids: tuple[int, ...], user: str | None, key: str | None
) -> None:
    """Remove overrides by ID, or a user's (for one --key)."""
    if not ids and not user:
        raise click.UsageError("give override IDs or --user")
    done = state.call(
        "admin.override.remove", ids=[str(i) for i in ids] or None, user=user, key=key
    )
    click.echo(f"removed override(s) {', '.join(str(i) for i in done['removed'])}")


@admin.group()
def labels() -> None:
    """The legacy aime.mlc.* labels and their ds01.* equivalents."""


@labels.command("migrate")
@click.option("--dry-run", is_flag=True, help="Only report; record and change nothing.")
@click.option(
    "--recreate-stopped",
    is_flag=True,
    help="Recreate stopped legacy containers with ds01.* labels (same image, mounts, env, GPUs).",
)
@json_option
@pass_state
def labels_migrate(state: CliState, dry_run: bool, recreate_stopped: bool, as_json: bool) -> None:
    """Report every legacy container and record its ds01.* labels in the state store.

    Running containers are never touched: their mapping is recorded, and ds01 reads them as
    ds01.* from then on. With --recreate-stopped, each stopped one is renamed aside, created
    again from its own configuration with ds01.* labels, and the old one removed.
    """
    data = state.call(
        "admin.labels.migrate",
        client_timeout=None,
        dry_run=dry_run,
        recreate_stopped=recreate_stopped,
    )
    found = data["containers"]
    if as_json:
        print_json(data)
        return
    if not found:
        click.echo("no legacy containers")
        return
    print_table(
        [_migration_row(c, dry_run, recreate_stopped) for c in found],
        ["container", "status", "user", "labels", "action"],
        shrinkable=[4],
    )
    if any(c["error"] for c in found):
        raise SystemExit(1)


def _migration_row(c: dict[str, Any], dry_run: bool, recreate_stopped: bool) -> tuple[Any, ...]:
    if dry_run:
        action = "would record" + (
            " + recreate" if recreate_stopped and c["status"] != "running" else ""
        )
    elif c["error"]:
        action = f"FAILED: {c['error']}"
    elif c["recreated_as"]:
        action = f"recreated as {c['recreated_as'][:12]}"
    else:
        action = "recorded" if c["recorded_now"] else "already recorded"
    mapping = c["mapping"]
    return (c["name"], c["status"], mapping.get("ds01.user", "-"), len(mapping), action)


@admin.group()
def exempt() -> None:
    """Exempt users or containers from the idle timeout and/or the maximum runtime."""


@exempt.command("set")
@click.option("--user", "user", help="Exempt all of USER's containers.")
@click.option("--container", "container", help="Exempt one container (name or id).")
@click.option("--idle/--no-idle", default=True, help="From the idle timeout [yes].")
@click.option(
    "--runtime/--no-runtime", "runtime_cap", default=False, help="From the maximum runtime [no]."
)
@click.option(
    "--expires", type=DateParam(), required=True, help="A date, or a duration from now (3d)."
)
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@allow_unknown_user_option
@pass_state
def exempt_set(
    state: CliState,
    user: str | None,
    container: str | None,
    idle: bool,
    runtime_cap: bool,
    expires: dt.datetime,
    reason: str,
    allow_unknown_user: bool,
) -> None:
    """Exempt a user or a container until --expires."""
    if bool(user) == bool(container):
        raise click.UsageError("give exactly one of --user and --container")
    done = state.call(
        "admin.exempt.set",
        user=user,
        container=container,
        idle=idle,
        runtime_cap=runtime_cap,
        expires=utc_text(expires),
        reason=reason,
        allow_unknown_user=allow_unknown_user,
    )
    click.echo(
        f"exemption(s) {', '.join(map(str, done['ids']))} for {done['target']} until "
        f"{_time(done['expires']):%Y-%m-%d %H:%M}Z"
    )


@exempt.command("list")
@json_option
@pass_state
def exempt_list(state: CliState, as_json: bool) -> None:
    """Active exemptions and keep-alives."""
    grants = state.call("admin.exempt.list")
    if as_json:
        print_json(grants)
        return
    print_table(
        [
            (g["id"], g["kind"], g["target"], g["expires"][:16] + "Z", g["granted_by"], g["reason"])
            for g in grants
        ],
        ["id", "kind", "target", "expires", "by", "reason"],
        shrinkable=[2, 5],
    )


@exempt.command("remove")
@click.argument("ids", nargs=-1, type=int, required=True)
@pass_state
def exempt_remove(state: CliState, ids: tuple[int, ...]) -> None:
    """End exemptions or keep-alives by ID."""
    done = state.call("admin.exempt.remove", ids=[str(i) for i in ids])
    click.echo(f"removed {done['removed']} exemption(s)")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _add_command_families() -> None:
    """Admin command families that live in modules of their own."""
    admin.add_command(bare_metal)
    admin.add_command(doctor)
    admin.add_command(admin_gpu)


_add_command_families()
