"""``ds01 admin``: commands for administrators (they change the state store: run as root)."""

from __future__ import annotations

import datetime as dt
import os

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.admin_params import (
    DateParam,
    allow_unknown_user_option,
    known_user,
    require_future,
)
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.model import Event
from ds01_core.overrides import (
    OverrideError,
    add_overrides,
    list_overrides,
    parse_assignment,
    remove_overrides,
)


def require_admin() -> str:
    """The acting admin's name; anyone else is refused before anything is touched."""
    from ds01_core.containers import caller_identity

    name, admin = caller_identity()
    if not admin or os.geteuid() != 0:
        fail("this is an admin command: run it as root (sudo) as a member of ds01-admin")
    return name


@click.group()
def admin() -> None:
    """Administration: overrides and other changes to the state store."""


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
    admin_name = require_admin()
    try:
        values = dict(parse_assignment(a) for a in assignments)
    except OverrideError as exc:
        raise click.BadParameter(str(exc), param_hint="KEY=VALUE") from None
    runtime = state.runtime
    require_future(state, expires)
    user = known_user(state, user, allow_unknown_user)
    try:
        with runtime.state.transaction() as db:
            ids = add_overrides(
                db,
                user,
                values,
                expires=expires,
                reason=reason,
                approved_by=approved_by or admin_name,
                now=runtime.now(),
            )
    except OverrideError as exc:
        raise click.UsageError(str(exc)) from None
    from ds01_core.config import converter

    runtime.events.append(
        Event(
            "override.set",
            user,
            "admin",
            {
                "values": converter.unstructure(values),
                "expires": expires.isoformat(),
                "reason": reason,
                "approved_by": approved_by or admin_name,
                "by": admin_name,
                "ids": ids,
            },
        )
    )
    click.echo(
        f"override(s) {', '.join(map(str, ids))} set for {user} until {expires:%Y-%m-%d %H:%M}Z"
    )


@override.command("list")
@click.option("--user", help="Only this user's.")
@click.option("--all", "show_all", is_flag=True, help="Include expired and removed ones.")
@json_option
@pass_state
def override_list(state: CliState, user: str | None, show_all: bool, as_json: bool) -> None:
    """List overrides (active ones, unless --all)."""
    runtime = state.runtime
    now = runtime.now()
    items = [o for o in list_overrides(runtime.state.db, user=user) if show_all or o.active(now)]
    if as_json:
        from ds01_core.config import converter

        print_json(
            [
                {
                    **converter.unstructure(o),
                    "value": converter.unstructure(o.value),
                    "active": o.active(now),
                }
                for o in items
            ]
        )
        return

    def status(o) -> str:  # type: ignore[no-untyped-def]
        if o.removed_at:
            return "removed"
        return "active" if o.active(now) else "expired"

    print_table(
        [
            (
                o.id,
                o.user,
                f"{o.key}={o.value}",
                f"{o.expires:%Y-%m-%d %H:%M}Z",
                status(o),
                o.approved_by,
                o.reason,
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
    admin_name = require_admin()
    if not ids and not user:
        raise click.UsageError("give override IDs or --user")
    runtime = state.runtime
    with runtime.state.transaction() as db:
        removed = remove_overrides(db, ids=list(ids) or None, user=user, key=key, now=runtime.now())
    if not removed:
        fail("no matching active override")
    for o in removed:
        runtime.events.append(
            Event("override.removed", o.user, "admin", {"id": o.id, "key": o.key, "by": admin_name})
        )
    click.echo(f"removed override(s) {', '.join(str(o.id) for o in removed)}")


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
    from ds01_core.label_migration import migrate

    if not dry_run:
        require_admin()
    found = migrate(state.runtime, dry_run=dry_run, recreate_stopped=recreate_stopped)
    if as_json:
        print_json({"dry_run": dry_run, "containers": [c.to_json() for c in found]})
        return
    if not found:
        click.echo("no legacy containers")
        return
    rows = []
    for c in found:
        if dry_run:
            action = "would record" + (
                " + recreate" if recreate_stopped and c.status != "running" else ""
            )
        elif c.error:
            action = f"FAILED: {c.error}"
        elif c.recreated_as:
            action = f"recreated as {c.recreated_as[:12]}"
        else:
            action = "recorded" if c.recorded_now else "already recorded"
        rows.append((c.name, c.status, c.mapping.get("ds01.user", "-"), len(c.mapping), action))
    print_table(rows, ["container", "status", "user", "labels", "action"], shrinkable=[4])
    if any(c.error for c in found):
        raise SystemExit(1)


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
    from ds01_core.lifecycle import add_grant
    from ds01_core.pipeline import detect

    admin_name = require_admin()
    if bool(user) == bool(container):
        raise click.UsageError("give exactly one of --user and --container")
    if not (idle or runtime_cap):
        raise click.UsageError("exempt from something: --idle and/or --runtime")
    if not reason.strip():
        raise click.UsageError("--reason must say why (it is kept in the audit log)")
    runtime = state.runtime
    require_future(state, expires)
    if container:
        matches = [
            w
            for w in detect(runtime)
            if w.kind == "container" and (w.name == container or w.id.startswith(container))
        ]
        if len(matches) != 1:
            fail(f"no single container {container!r}")
        target, owner = f"container:{matches[0].id}", matches[0].owner
    else:
        owner = known_user(state, user or "", allow_unknown_user)
        target = f"user:{owner}"
    kinds = [k for k, on in (("exempt_idle", idle), ("exempt_runtime", runtime_cap)) if on]
    now = runtime.now()
    with runtime.state.transaction() as db:
        ids = [
            add_grant(db, kind, owner, target, expires, reason, admin_name, now) for kind in kinds
        ]
    runtime.events.append(
        Event(
            "lifecycle.exempt",
            owner,
            "admin",
            {
                "target": target,
                "kinds": kinds,
                "expires": expires.isoformat(),
                "reason": reason,
                "by": admin_name,
                "ids": ids,
            },
        )
    )
    click.echo(
        f"exemption(s) {', '.join(map(str, ids))} for {target} until {expires:%Y-%m-%d %H:%M}Z"
    )


@exempt.command("list")
@json_option
@pass_state
def exempt_list(state: CliState, as_json: bool) -> None:
    """Active exemptions and keep-alives."""
    from ds01_core.lifecycle import active_grants

    runtime = state.runtime
    grants = active_grants(runtime.state.db, runtime.now())
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
    from ds01_core.lifecycle import revoke_grants

    admin_name = require_admin()
    runtime = state.runtime
    with runtime.state.transaction() as db:
        count = revoke_grants(db, ids, runtime.now())
    if not count:
        fail("no matching active exemption")
    runtime.events.append(
        Event("lifecycle.exempt_removed", None, "admin", {"ids": list(ids), "by": admin_name})
    )
    click.echo(f"removed {count} exemption(s)")


def _add_command_families() -> None:
    """Admin command families that live in modules of their own."""
    from ds01_core.cli.bare_metal_cmd import bare_metal
    from ds01_core.cli.doctor_cmd import doctor

    admin.add_command(bare_metal)
    admin.add_command(doctor)


_add_command_families()
