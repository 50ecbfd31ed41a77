"""Bare-metal GPU access: time-limited grants that put a user in the group owning ``/dev/nvidia*``.

Outside containers, the device nodes are the only gate to a GPU. The shipped udev rule and
module options (``packaging/``) give them to ``bare_metal.group`` with mode 0660, so being in
that group *is* the permission. A grant is recorded in the state store's ``grants`` table
(kind ``bare_metal``, target ``user:<name>``) with an expiry, and the group membership follows
it: added on grant, removed on revoke and, by the daemon (``ds01_core.builtin.bare_metal_watch``),
when it expires.

A membership change reaches new logins only: a shell started before a revoke keeps the group.
That is why the daemon also reports (and may stop) host GPU processes of users who hold no
grant, rather than trusting the group alone.
"""

from __future__ import annotations

import datetime as dt
import grp
import logging
import sqlite3
import subprocess
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ds01_core.cycle.notices import tell_user
from ds01_core.domain.model import Event, Notice, utc_text
from ds01_core.domain.state.grants import add_grant, open_grants, revoke_grants
from ds01_core.domain.users import normalize_username, uid_for_username

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)

KIND = "bare_metal"


class BareMetalError(Exception):
    """A grant or revoke that could not be done; the message says what to do about it."""


class GroupMembership(Protocol):
    """How Unix group membership is read and changed (injectable: tests, other backends)."""

    def exists(self, group: str) -> bool: ...
    def members(self, group: str) -> set[str]: ...
    def add(self, user: str, group: str) -> None: ...
    def remove(self, user: str, group: str) -> None: ...


class UnixGroups:
    """The host's own groups: ``gpasswd`` to change them (it locks /etc/group and keeps
    /etc/gshadow in step), ``grp`` to read them."""

    def exists(self, group: str) -> bool:
        try:
            grp.getgrnam(group)
        except KeyError:
            return False
        return True

    def members(self, group: str) -> set[str]:
        """Supplementary members, the ones gpasswd manages (not users whose primary group it is)."""
        try:
            return set(grp.getgrnam(group).gr_mem)
        except KeyError:
            return set()

    def add(self, user: str, group: str) -> None:
        self._gpasswd("-a", user, group)

    def remove(self, user: str, group: str) -> None:
        self._gpasswd("-d", user, group)

    @staticmethod
    def _gpasswd(flag: str, user: str, group: str) -> None:
        try:
            done = subprocess.run(
                ["gpasswd", flag, user, group], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BareMetalError(f"gpasswd {flag} {user} {group} failed: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise BareMetalError(f"gpasswd {flag} {user} {group} failed: {detail}")


@attrs.frozen
class BareMetalGrant:
    """One active grant, as ``ds01 admin bare-metal list`` shows it."""

    id: int
    user: str
    expires: dt.datetime
    reason: str
    granted_by: str
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "expires": utc_text(self.expires),
            "reason": self.reason,
            "granted_by": self.granted_by,
            "created_at": utc_text(self.created_at),
        }


@attrs.frozen
class Revocation:
    """What a revoke changed: the grant records ended, and whether a membership was removed."""

    user: str
    group: str
    grants: list[int]
    membership_removed: bool


def _group(runtime: Runtime) -> str:
    return runtime.config.bare_metal.group


def _require_group(groups: GroupMembership, group: str) -> None:
    if not groups.exists(group):
        raise BareMetalError(
            f"the group {group!r} does not exist: create it with `groupadd --system {group}` and "
            "install the udev rule and module options that give it /dev/nvidia* "
            "(docs/bare-metal.md)"
        )


def _open_rows(db: sqlite3.Connection, user: str | None = None) -> list[sqlite3.Row]:
    """Bare-metal grants not revoked yet, expired or not."""
    return open_grants(db, KIND, user)


def _expires(row: sqlite3.Row) -> dt.datetime:
    return dt.datetime.fromisoformat(row["expires"])


def _as_grant(row: sqlite3.Row) -> BareMetalGrant:
    return BareMetalGrant(
        id=int(row["id"]),
        user=row["user"],
        expires=_expires(row),
        reason=row["reason"] or "",
        granted_by=row["granted_by"] or "",
        created_at=dt.datetime.fromisoformat(row["created_at"]),
    )


def list_grants(runtime: Runtime, *, now: dt.datetime | None = None) -> list[BareMetalGrant]:
    """Active (unrevoked, unexpired) bare-metal grants, oldest first."""
    now = now or runtime.now()
    with runtime.state.transaction(immediate=False) as db:
        rows = _open_rows(db)
    return [_as_grant(r) for r in rows if _expires(r) > now]


def granted_users(runtime: Runtime, *, now: dt.datetime | None = None) -> set[str]:
    return {g.user for g in list_grants(runtime, now=now)}


def grant(
    runtime: Runtime,
    user: str,
    duration: float | None,
    reason: str,
    granted_by: str,
    *,
    groups: GroupMembership | None = None,
) -> BareMetalGrant:
    """Give ``user`` direct GPU access for ``duration`` seconds (``bare_metal.default_duration``
    when None): group membership plus a grant record. An active grant of theirs is replaced,
    so a user has at most one and "extend" is simply granting again."""
    groups = groups or UnixGroups()
    user = normalize_username(user)
    if uid_for_username(user) is None:
        raise BareMetalError(f"there is no user {user!r} on this host")
    seconds = float(runtime.config.bare_metal.default_duration if duration is None else duration)
    if seconds <= 0:
        raise BareMetalError("the duration must be positive")
    group = _group(runtime)
    _require_group(groups, group)
    was_member = user in groups.members(group)
    groups.add(user, group)
    now = runtime.now()
    expires = now + dt.timedelta(seconds=seconds)
    try:
        with runtime.state.transaction() as db:
            replaced = [int(r["id"]) for r in _open_rows(db, user)]
            revoke_grants(db, replaced, now)
            grant_id = add_grant(db, KIND, user, f"user:{user}", expires, reason, granted_by, now)
    except Exception:
        if not was_member:  # no record, no access: undo the membership we just added
            try:
                groups.remove(user, group)
            except BareMetalError as exc:
                log.error("could not undo %s's membership of %s: %s", user, group, exc)
        raise
    runtime.events.append(
        Event(
            "bare_metal.granted",
            user,
            "admin",
            {
                "group": group,
                "grant": grant_id,
                "expires": utc_text(expires),
                "seconds": round(seconds),
                "reason": reason,
                "by": granted_by,
                "replaced": replaced,
                "was_member": was_member,
            },
        )
    )
    return BareMetalGrant(grant_id, user, expires, reason, granted_by, now)


def revoke(
    runtime: Runtime, user: str, by: str, *, groups: GroupMembership | None = None
) -> Revocation:
    """End ``user``'s grants and remove them from the group.

    The membership is removed even when ds01 has no grant on record (someone ran ``gpasswd``
    by hand): revoke is also the admin's clean-up tool. Nothing to revoke at all is an error.
    """
    groups = groups or UnixGroups()
    user = normalize_username(user)
    group = _group(runtime)
    with runtime.state.transaction(immediate=False) as db:
        ids = [int(r["id"]) for r in _open_rows(db, user)]
    member = groups.exists(group) and user in groups.members(group)
    if not ids and not member:
        raise BareMetalError(
            f"{user} has no bare-metal grant and is not in the group {group!r}: nothing to revoke"
        )
    if member:
        groups.remove(user, group)  # first: a failure leaves the grant on record, to retry
    now = runtime.now()
    with runtime.state.transaction() as db:
        revoke_grants(db, ids, now)
    runtime.events.append(
        Event(
            "bare_metal.revoked",
            user,
            "admin",
            {"group": group, "grants": ids, "membership_removed": member, "by": by},
        )
    )
    return Revocation(user, group, ids, member)


def expire(
    runtime: Runtime,
    *,
    groups: GroupMembership | None = None,
    now: dt.datetime | None = None,
) -> list[Event]:
    """End grants whose time is up: remove the membership (unless another grant of the user's
    is still active) and tell the user.

    :return: one ``bare_metal.expired`` event per user, which the caller writes to the audit
        log (the daemon's ``reconcile`` returns them to the core). A membership that could not
        be removed leaves the grant open, so the next call tries again.
    """
    groups = groups or UnixGroups()
    now = now or runtime.now()
    group = _group(runtime)
    with runtime.state.transaction(immediate=False) as db:
        rows = _open_rows(db)
    due: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in rows:
        if _expires(row) <= now:
            due[row["user"]].append(row)
    if not due:
        return []
    still = {r["user"] for r in rows if _expires(r) > now}
    reported: set[int] = runtime.memo("bare-metal.expire-errors", set)
    events = []
    for user, expired in sorted(due.items()):
        ids = [int(r["id"]) for r in expired]
        removed = False
        if user not in still and groups.exists(group) and user in groups.members(group):
            try:
                groups.remove(user, group)
                removed = True
            except BareMetalError as exc:
                log.error("bare metal: %s", exc)
                if not reported.issuperset(ids):  # once, not every cycle
                    reported.update(ids)
                    events.append(
                        Event(
                            "bare_metal.error",
                            user,
                            "bare-metal",
                            {"grants": ids, "error": str(exc)},
                        )
                    )
                continue
        with runtime.state.transaction() as db:
            revoke_grants(db, ids, now)
        events.append(
            Event(
                "bare_metal.expired",
                user,
                "bare-metal",
                {
                    "group": group,
                    "grants": ids,
                    "expired_at": utc_text(max(_expires(r) for r in expired)),
                    "membership_removed": removed,
                },
            )
        )
        if user not in still:
            _tell_expired(runtime, user, group)
    return events


def _tell_expired(runtime: Runtime, user: str, group: str) -> None:
    tell_user(
        runtime,
        Notice(
            user,
            "bare-metal GPU access ended",
            f"Your direct GPU access (group {group}) has expired. GPU programs you start outside "
            "a container from now on are reported; run them in a container through ds01, or ask "
            "an admin for a new grant.",
            "info",
            None,
            "bare_metal.expired",
        ),
    )


def members_without_grant(runtime: Runtime, *, groups: GroupMembership | None = None) -> list[str]:
    """Members of the group who hold no active grant (added by hand): their access never ends."""
    groups = groups or UnixGroups()
    return sorted(groups.members(_group(runtime)) - granted_users(runtime))


def gpu_group_id(runtime: Runtime) -> int | None:
    """The gid of ``bare_metal.group`` if it exists: containers that run as a non-root user
    need it to open GPU device nodes made 0660 to that group."""
    try:
        return grp.getgrnam(runtime.config.bare_metal.group).gr_gid
    except KeyError:
        return None
