"""Answers from the cache only: a user's ds01 group, and the sentence explaining it.

Both are called while limits are resolved (every allocation, every ``ds01 quota``), so they
never touch the network; a cache that cannot be read (a user's own CLI: the state store is
root-only) or does not exist yet (no sync so far) means "no LDAP answer", never an error.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

import attrs

from ds01_core.api import normalize_username
from ds01_ldap.resolve import choose
from ds01_ldap.store import CachedMembership, SyncState, iso, read_membership, read_sync_state
from ds01_ldap.sync import config_of

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)


def cached_group(runtime: Runtime, user: str) -> str | None:
    """The ds01 group the last sync gave ``user``, if its mapping is still configured."""
    cfg = config_of(runtime)
    if cfg is None or not cfg.groups:
        return None
    try:
        row = read_membership(runtime.state.db, normalize_username(user))
    except (sqlite3.Error, OSError) as exc:
        log.debug("LDAP membership cache unavailable: %s", exc)
        return None
    if row is None or row.group not in cfg.groups:
        return None
    return row.group


@attrs.frozen
class GroupExplanation:
    """Why the LDAP plugin puts a user where it does; ``str()`` is the one-line answer."""

    user: str
    group: str | None
    reason: str
    ldap_groups: dict[str, str] = attrs.Factory(dict)
    synced_at: str | None = None
    last_sync: SyncState | None = None

    @property
    def text(self) -> str:
        return f"LDAP: {self.reason}"

    def __str__(self) -> str:
        return self.text


NO_SYNC = "no sync has run yet; the configuration file decides"


def explain(runtime: Runtime, user: str) -> GroupExplanation | None:
    """The plugin's answer for ``user`` with its reason, from the cache (None: not configured).

    For a user in two mapped groups the text reads
    ``LDAP: in student (precedence 10) and researcher (precedence 20): researcher wins (last
    sync …)``.
    """
    cfg = config_of(runtime)
    if cfg is None or not cfg.groups:
        return None
    name = normalize_username(user)
    try:
        state = read_sync_state(runtime.state.db)
        row: CachedMembership | None = read_membership(runtime.state.db, name)
    except (sqlite3.Error, OSError) as exc:
        if "no such table" in str(exc):
            return GroupExplanation(name, None, NO_SYNC)
        return GroupExplanation(name, None, f"membership cache unreadable ({exc})")
    if state.last_success is None:
        return GroupExplanation(name, None, NO_SYNC, last_sync=state)
    since = f" (last sync {iso(state.last_success)})"
    if row is None:
        reason = f"in no mapped LDAP group{since}; the configuration file decides"
        return GroupExplanation(name, None, reason, last_sync=state)
    choice = choose(row.ldap_groups, cfg.groups)
    reason = f"{choice.text}{since}"
    if choice.group != row.group:  # the mapping changed since the sync; the next sync applies it
        reason += f"; the cache says {row.group} until the next sync"
    group = row.group if row.group in cfg.groups else None
    synced = iso(row.synced_at) if row.synced_at else None
    return GroupExplanation(name, group, reason, row.ldap_groups, synced, state)


def explain_user_group(runtime: Runtime, user: str) -> str | None:
    """One line for ``ds01 config show --user``: the LDAP plugin's group for ``user`` and why;
    None when the plugin maps no groups."""
    found = explain(runtime, user)
    return None if found is None else found.text
