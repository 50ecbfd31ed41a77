"""The admin operation ``admin.mlflow.sync``: an MLflow account for every ds01 user.

"Every ds01 user" is who the core enforces limits for (owners of a workload now, users and
group members named in ``limits``), the members of the admin group, and everyone who already
has a credential file — each only when the host knows the account (their credential file is
theirs). ``--user NAME`` syncs one. For each: the account is made (or its password renewed
when the server refuses the file's), ``--rotate`` gives a new password, and MLflow's
``is_admin`` follows membership of ds01's admin group (others lose it). ``--dry-run`` changes
nothing and says what would be done. Passwords are never in the answer or the audit log.
"""

from __future__ import annotations

import grp
import pwd
from typing import Any

from ds01_core.api import (
    Event,
    Invalid,
    Operation,
    Param,
    ServiceContext,
    current_workloads,
    normalize_username,
    users_to_enforce,
)
from ds01_mlflow.client import MlflowClient
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.credentials import Credentials, new_password
from ds01_mlflow.ops import as_service_errors, require_set_up
from ds01_mlflow.provision import (
    admin_client,
    credentials_accepted,
    ensure_user,
    is_group_admin,
    mlflow_config,
    store,
)


def admin_group_members(group_name: str) -> set[str]:
    """The admin group's listed members (those with it as primary group are found per user)."""
    try:
        return set(grp.getgrnam(group_name).gr_mem)
    except KeyError:
        return set()


def ds01_users(ctx: ServiceContext, config: MlflowConfig, warnings: list[str]) -> list[str]:
    """Every ds01 user with a local account (see the module's docstring)."""
    runtime = ctx.runtime
    errors: list[str] = []
    try:
        workloads = current_workloads(runtime, errors)
    except Exception as exc:  # reported: the configuration's users are still synced
        workloads = []
        errors.append(f"cannot list the workloads: {exc}")
    warnings.extend(errors)
    names = set(users_to_enforce(runtime, workloads))
    names |= admin_group_members(runtime.config.gateway.admin_group)
    names |= set(store(config).users())
    found = []
    for name in sorted(names):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            warnings.append(f"{name}: no local account (passwd/NSS): skipped")
            continue
        if entry.pw_uid != 0 and name != config.admin_username:
            found.append(name)
    return found


def sync_user(
    config: MlflowConfig,
    admin: MlflowClient,
    user: str,
    want_admin: bool,
    *,
    rotate: bool,
    dry_run: bool,
) -> list[str]:
    """What was (or, for ``dry_run``, would be) done for ``user``, in words."""
    done: list[str] = []
    account = admin.get_user(user)
    known = store(config).read(user)
    if account is None:
        done.append("account created")
    elif known is None:
        done.append("new password (no credential file)")
    elif rotate:
        done.append("password rotated")
    elif not credentials_accepted(config, known):
        done.append("new password (the file's was refused)")
    if not dry_run:
        if rotate and account is not None:
            credentials = Credentials(user, new_password())
            admin.update_password(user, credentials.password)
            store(config).write(credentials)
        else:
            ensure_user(config, admin, user)
    if account is None or bool(account.get("is_admin")) != want_admin:
        if want_admin:
            done.append("made an MLflow admin")
        elif account is not None:
            done.append("MLflow admin taken away")
        if not dry_run and (want_admin or account is not None):
            admin.update_admin(user, want_admin)
    return done


def sync(
    ctx: ServiceContext, user: str | None = None, rotate: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """An account for every ds01 user (or ``user``), admin flags from the admin group."""
    ctx.require_admin()
    config = mlflow_config(ctx.runtime)
    require_set_up(config)
    group = ctx.runtime.config.gateway.admin_group
    warnings: list[str] = []
    if user:
        name = normalize_username(user)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise Invalid(f"{name!r} is not a user of this server (getent passwd)") from None
        if entry.pw_uid == 0 or name == config.admin_username:
            raise Invalid(f"{name!r} gets no MLflow account from ds01 (root, or the admin one)")
        names = [name]
    else:
        names = ds01_users(ctx, config, warnings)
    rows = []
    with as_service_errors(config), admin_client(config) as admin:
        for name in names:
            want_admin = is_group_admin(name, group)
            done = sync_user(config, admin, name, want_admin, rotate=rotate, dry_run=dry_run)
            rows.append(
                {
                    "user": name,
                    "admin": want_admin,
                    "done": done,
                    "credentials_file": str(store(config).path(name)),
                }
            )
    changed = [r for r in rows if r["done"]]
    if not dry_run and changed:
        ctx.runtime.events.append(
            Event(
                "mlflow.synced",
                user=ctx.caller.name,
                source="ds01-mlflow",
                details={"users": {r["user"]: r["done"] for r in changed}, "rotate": rotate},
            )
        )
    return {"dry_run": dry_run, "rotate": rotate, "users": rows, "warnings": warnings}


OPERATIONS = [
    Operation(
        "admin.mlflow.sync",
        "POST",
        "/v1/admin/mlflow/sync",
        sync,
        params=(
            Param("user"),
            Param("rotate", "bool", default=False),
            Param("dry_run", "bool", default=False),
        ),
        admin=True,
        summary="An MLflow account for every ds01 user; admin flags from the admin group (admins).",
    )
]
