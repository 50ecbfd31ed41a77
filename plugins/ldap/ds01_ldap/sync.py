"""One sync: read the directory, compare with the cache, hold what looks like a mistake, apply
the rest, and say what happened as events.

The comparison (:func:`plan_sync`) is pure. The guard against mass removal exists because the
usual cause of "half a group vanished" is not half the students leaving but a renamed group, an
ACL change or a broken search base; applying that would silently change many users' limits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.api import Event
from ds01_ldap.config import LdapConfig, advice
from ds01_ldap.errors import DirectoryError, DirectoryUnreachable
from ds01_ldap.resolve import Membership, memberships
from ds01_ldap.store import (
    SyncState,
    clear_pending,
    ensure_schema,
    iso,
    read_memberships,
    read_pending,
    read_sync_state,
    write_membership,
    write_pending,
    write_sync_state,
)

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)

SOURCE = "ldap"
CONFIRM_HINT = "ds01 admin ldap sync --confirm"


@attrs.frozen
class Change:
    """A user whose ds01 group changes: ``before``/``after`` None mean "in no mapped group"."""

    user: str
    before: str | None
    after: str | None
    ldap_groups: dict[str, str] = attrs.Factory(dict)
    held: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "from": self.before,
            "to": self.after,
            "ldap_groups": self.ldap_groups,
            "held": self.held,
        }


@attrs.frozen
class Shrink:
    """A group that would lose ``removing`` of its ``members`` current members."""

    group: str
    members: int
    removing: int

    @property
    def share(self) -> float:
        return self.removing / self.members if self.members else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "removing": self.removing,
            "share": round(self.share, 4),
        }

    def describe(self, limit: float) -> str:
        return (
            f"{self.group}: would remove {self.removing} of {self.members} members "
            f"({self.share:.0%} > {limit:.0%})"
        )


@attrs.frozen
class SyncPlan:
    """What a sync would do: every group change, and the groups whose removals are held."""

    desired: dict[str, Membership]
    changes: tuple[Change, ...]
    held: dict[str, Shrink]
    max_removal_share: float

    @property
    def to_apply(self) -> list[Change]:
        return [c for c in self.changes if not c.held]

    @property
    def held_changes(self) -> list[Change]:
        return [c for c in self.changes if c.held]

    def joins(self) -> dict[str, list[str]]:
        """ds01 group → users joining it (held changes excluded)."""
        out: dict[str, list[str]] = {}
        for change in self.to_apply:
            if change.after:
                out.setdefault(change.after, []).append(change.user)
        return out

    def leaves(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for change in self.to_apply:
            if change.before:
                out.setdefault(change.before, []).append(change.user)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.to_json() for c in self.changes],
            "joins": self.joins(),
            "leaves": self.leaves(),
            "held_groups": {name: s.to_json() for name, s in self.held.items()},
            "max_removal_share": self.max_removal_share,
            "users": len(self.desired),
        }


def plan_sync(
    current: Mapping[str, Membership],
    desired: Mapping[str, Membership],
    max_removal_share: float,
    *,
    confirm: bool = False,
) -> SyncPlan:
    """Compare the cache (``current``) with the directory (``desired``).

    A group whose removals would exceed ``max_removal_share`` of its current members is held:
    every change of a user *leaving* it (to no group or to another group) waits for an admin's
    ``--confirm``; all other changes apply. ``confirm`` lifts the guard.
    """
    users = sorted(set(current) | set(desired))
    draft = []
    for user in users:
        before = current[user].group if user in current else None
        after = desired[user].group if user in desired else None
        if before != after:
            ldap_groups = desired[user].ldap_groups if user in desired else {}
            draft.append(Change(user, before, after, ldap_groups))
    sizes = Counter(m.group for m in current.values())
    removing = Counter(c.before for c in draft if c.before is not None)
    held: dict[str, Shrink] = {}
    if not confirm:
        for group, count in sorted(removing.items()):
            shrink = Shrink(group, sizes[group], count)
            if shrink.share > max_removal_share:
                held[group] = shrink
    changes = tuple(attrs.evolve(c, held=c.before in held) for c in draft)
    return SyncPlan(dict(desired), changes, held, max_removal_share)


# -- running a sync ---------------------------------------------------------------------------


@attrs.define
class SyncOutcome:
    """What one sync did (or, for a dry run, would do), and the events that record it."""

    server: str | None = None
    plan: SyncPlan | None = None
    applied: bool = False
    error: str | None = None
    unreachable: bool = False
    events: list[Event] = attrs.Factory(list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "server": self.server,
            "applied": self.applied,
            "error": self.error,
        }
        if self.plan is not None:
            data.update(self.plan.to_json())
            data["confirm_with"] = CONFIRM_HINT if self.plan.held else None
        return data


def config_of(runtime: Runtime) -> LdapConfig | None:
    cfg = runtime.plugin_config("ldap")
    return cfg if isinstance(cfg, LdapConfig) else None


def sync_due(state: SyncState, cfg: LdapConfig, now: dt.datetime) -> bool:
    """Due when ``sync_interval`` has passed since the last success, or the mapping changed;
    after a failure, not again before ``retry_interval`` (a dead directory must not be
    hammered, nor stall every daemon cycle on its timeouts)."""
    failed_at = state.last_attempt if state.last_error else None
    if failed_at is not None and (now - failed_at).total_seconds() < cfg.retry_interval:
        return False
    if state.last_success is None or state.fingerprint != cfg.mapping_fingerprint():
        return True
    return (now - state.last_success).total_seconds() >= cfg.sync_interval


def _failure(
    runtime: Runtime, cfg: LdapConfig, exc: DirectoryError, now: dt.datetime, *, record: bool
) -> SyncOutcome:
    with runtime.state.transaction() as db:
        state = read_sync_state(db)
        kept = len(read_memberships(db))
        if record:
            write_sync_state(db, last_attempt=now, last_error=str(exc))
    since = iso(state.last_success) if state.last_success else "never"
    log.warning(
        "LDAP sync failed (%s); keeping the last known membership of %d user(s), synced %s",
        exc,
        kept,
        since,
    )
    details: dict[str, Any] = {
        "error": str(exc),
        "servers": list(cfg.servers),
        "kept_users": kept,
        "last_success": iso(state.last_success) if state.last_success else None,
    }
    unreachable = isinstance(exc, DirectoryUnreachable)
    if isinstance(exc, DirectoryUnreachable):
        details["attempts"] = exc.attempts
    event = Event("ldap.unreachable" if unreachable else "ldap.sync_failed", None, SOURCE, details)
    return SyncOutcome(error=str(exc), unreachable=unreachable, events=[event])


def _change_events(plan: SyncPlan, server: str) -> list[Event]:
    events = []
    for change in plan.to_apply:
        if change.before is not None:
            events.append(
                Event(
                    "group.member_removed",
                    change.user,
                    SOURCE,
                    {"group": change.before, "next_group": change.after, "server": server},
                )
            )
        if change.after is not None:
            events.append(
                Event(
                    "group.member_added",
                    change.user,
                    SOURCE,
                    {
                        "group": change.after,
                        "previous_group": change.before,
                        "ldap_groups": change.ldap_groups,
                        "server": server,
                    },
                )
            )
    return events


def run_sync(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    confirm: bool = False,
    now: dt.datetime | None = None,
) -> SyncOutcome:
    """Read the directory and bring the cache in line (or, with ``dry_run``, only say how).

    The directory is read before the state store's write lock is taken, so a slow server never
    blocks allocations; the cache is then compared and written in one ``BEGIN IMMEDIATE``
    transaction, so a concurrent sync cannot interleave. On any directory error nothing in the
    cache changes.
    """
    cfg = config_of(runtime)
    if cfg is None or not cfg.enabled:
        return SyncOutcome(error="plugins.ldap maps no groups (or names no servers): nothing to do")
    from ds01_ldap.directory import fetch_members  # the LDAP client, only when syncing

    now = now or runtime.now()
    ensure_schema(runtime)
    try:
        found = fetch_members(cfg)
    except DirectoryError as exc:
        return _failure(runtime, cfg, exc, now, record=not dry_run)
    desired = memberships(found.members, cfg.groups)
    outcome = SyncOutcome(server=found.server)
    with runtime.state.transaction() as db:
        current = {user: row.membership for user, row in read_memberships(db).items()}
        plan = plan_sync(current, desired, cfg.max_removal_share, confirm=confirm)
        outcome.plan = plan
        if dry_run:
            return outcome
        held_users = {c.user for c in plan.held_changes}
        for user in sorted(set(desired) | set(current)):
            if user not in held_users:
                write_membership(db, user, desired.get(user), now)
        previous = read_pending(db)
        if plan.held:
            held_json = [c.to_json() for c in plan.held_changes]
            groups_json = {name: s.to_json() for name, s in plan.held.items()}
            new_hold = previous is None or previous.changes != held_json
            write_pending(db, now=now, server=found.server, groups=groups_json, changes=held_json)
        else:
            new_hold = False
            clear_pending(db)
        write_sync_state(
            db,
            last_success=now,
            last_attempt=now,
            last_error=None,
            server=found.server,
            fingerprint=cfg.mapping_fingerprint(),
        )
    outcome.applied = True
    outcome.events = _change_events(plan, found.server)
    if plan.to_apply or confirm:
        outcome.events.append(
            Event(
                "ldap.sync",
                None,
                SOURCE,
                {
                    "server": found.server,
                    "joins": plan.joins(),
                    "leaves": plan.leaves(),
                    "users": len(desired),
                    "confirmed": confirm,
                },
            )
        )
    if new_hold:
        log.warning(
            "LDAP sync held for admin confirmation (%s); run: %s",
            "; ".join(s.describe(plan.max_removal_share) for s in plan.held.values()),
            CONFIRM_HINT,
        )
        outcome.events.append(
            Event(
                "ldap.sync_held",
                None,
                SOURCE,
                {
                    "server": found.server,
                    "groups": {name: s.to_json() for name, s in plan.held.items()},
                    "max_removal_share": plan.max_removal_share,
                    "held_changes": [c.to_json() for c in plan.held_changes],
                    "confirm_with": CONFIRM_HINT,
                },
            )
        )
    return outcome


def reconcile_events(runtime: Runtime) -> list[Event]:
    """The daemon's periodic step: sync when due, return the events (the core logs them)."""
    cfg = config_of(runtime)
    if cfg is None or not cfg.enabled:
        return []
    ensure_schema(runtime)

    def warn() -> bool:
        for note in advice(cfg, runtime.config.limits.groups):
            log.warning("%s", note)
        return True

    runtime.memo("ds01_ldap.advice", warn)  # once per configuration (a reload is a new runtime)
    now = runtime.now()
    if not sync_due(read_sync_state(runtime.state.db), cfg, now):
        return []
    return run_sync(runtime, now=now).events
