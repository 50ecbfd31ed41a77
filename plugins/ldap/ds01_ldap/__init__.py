"""ds01-ldap: which ds01 group each user is in, from an LDAP or Active Directory server.

The daemon reads the mapped groups on a schedule (``reconcile``) into a cache in ds01's state
store; ``user_group`` answers from that cache only. Public API beyond the hooks:

- :func:`explain_user_group` ``(runtime, user) -> str | None``: one line saying which group the
  directory gives a user and why (for ``ds01 config show --user``);
- :func:`explain` for the same as a structured :class:`GroupExplanation`;
- :func:`run_sync` to sync now (``dry_run``, ``confirm``) and get a :class:`SyncOutcome`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import hookimpl
from ds01_ldap.config import GroupMapping, LdapConfig
from ds01_ldap.lookup import GroupExplanation, cached_group, explain
from ds01_ldap.lookup import explain_user_group as _explain_user_group
from ds01_ldap.sync import SyncOutcome, reconcile_events, run_sync

if TYPE_CHECKING:
    import click

    from ds01_core.api import Event, Operation, Runtime, Workload

__version__ = "0.1.0"

__all__ = [
    "GroupExplanation",
    "GroupMapping",
    "LdapConfig",
    "SyncOutcome",
    "explain",
    "explain_user_group",
    "run_sync",
]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.ldap:``, validated by the core with every problem named by its path."""
    return {"ldap": LdapConfig}


@hookimpl
def user_group(runtime: Runtime, user: str) -> str | None:
    """The cached group (never a network call); None lets the configuration file decide."""
    return cached_group(runtime, user)


@hookimpl
def explain_user_group(runtime: Runtime, user: str) -> str | None:
    """Why ``user`` is in their group, from the last sync (``ds01 config show --user``)."""
    return _explain_user_group(runtime, user)


@hookimpl
def user_known(runtime: Runtime, user: str) -> bool | None:
    """Whether the membership cache or the directory has ``user`` (admin commands ask this
    for names the host does not know; None when the directory cannot be read)."""
    from ds01_ldap.known import user_known as _user_known

    return _user_known(runtime, user)


@hookimpl
def reconcile(runtime: Runtime, workloads: Sequence[Workload]) -> Sequence[Event]:
    """Re-sync when ``sync_interval`` has passed (or the mapping changed); the events say
    who joined or left which group, or that the directory could not be read."""
    return reconcile_events(runtime)


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 admin ldap sync|show`` (top-level ``ds01 ldap`` if the core has no ``admin``)."""
    from ds01_ldap.cli import add_commands

    add_commands(cli)


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``ldap.sync`` and ``ldap.show`` (admins): the work behind ``ds01 admin ldap``."""
    from ds01_ldap.services import OPERATIONS

    return OPERATIONS
