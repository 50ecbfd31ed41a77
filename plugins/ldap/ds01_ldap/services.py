"""The LDAP plugin's service operations (admins only): sync now, and explain one user.

Admin-only because a sync reads the directory with the server's bind credentials and changes
everyone's group, and ``show`` tells another user's directory groups. The CLI renders what
these return, in-process for root and through the API socket for everyone else.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ds01_core.api import Invalid, Operation, Param, ServiceContext
from ds01_ldap.config import LdapConfig, advice
from ds01_ldap.lookup import explain
from ds01_ldap.store import iso, read_pending
from ds01_ldap.sync import config_of, run_sync


def _enabled(ctx: ServiceContext) -> LdapConfig:
    cfg = config_of(ctx.runtime)
    if cfg is None or not cfg.enabled:
        raise Invalid("plugins.ldap maps no groups or names no servers: nothing to sync")
    return cfg


def sync(ctx: ServiceContext, dry_run: bool = False, confirm: bool = False) -> dict[str, Any]:
    """Read the directory now and update the cache (not for ``dry_run``); ``confirm``
    applies removals held for exceeding ``max_removal_share``. A failed read is in ``error``
    (the last known membership stays); ``warnings`` are the configuration's weak points."""
    runtime = ctx.runtime
    cfg = _enabled(ctx)
    warnings = advice(cfg, runtime.config.limits.groups)
    outcome = run_sync(runtime, dry_run=dry_run, confirm=confirm)
    for event in [] if dry_run else outcome.events:  # a dry run records nothing
        event.details["by"] = ctx.caller.name
        runtime.events.append(event)
    return {"dry_run": dry_run, "confirm": confirm, **outcome.to_json(), "warnings": warnings}


def show(ctx: ServiceContext, user: str) -> dict[str, Any]:
    """``user``'s mapped LDAP groups (from the last sync), their ds01 group, and why."""
    runtime = ctx.runtime
    found = explain(runtime, user)
    cfg = config_of(runtime)
    if found is None or cfg is None:
        raise Invalid("plugins.ldap maps no groups")
    try:
        pending = read_pending(runtime.state.db) is not None
    except (sqlite3.Error, OSError):  # no table before the first sync
        pending = False
    last = found.last_sync
    return {
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


OPERATIONS = (
    Operation(
        "ldap.sync",
        "POST",
        "/v1/ldap/sync",
        sync,
        (Param("dry_run", "bool", default=False), Param("confirm", "bool", default=False)),
        admin=True,
        summary="Sync group membership from the directory now.",
    ),
    Operation(
        "ldap.show",
        "GET",
        "/v1/ldap/users/{user}",
        show,
        (Param("user", required=True),),
        admin=True,
        summary="A user's directory groups and ds01 group, and why.",
    ),
)
