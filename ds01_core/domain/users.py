"""User names as the host sees them, and the Unix facts ds01 needs about a user.

Every place that compares user names (config, labels, LDAP, peer credentials) goes through
:func:`normalize_username`, so ``Alice@EXAMPLE.ORG``, ``EXAMPLE\\alice`` and ``alice`` are one
person everywhere.
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

_UNSAFE = re.compile(r"[^a-z0-9_.-]")


def normalize_username(name: str) -> str:
    """Lower-case, strip a Kerberos/e-mail domain (``@…``) or a Windows domain (``DOM\\``)."""
    name = name.strip()
    if "\\" in name:
        name = name.rsplit("\\", 1)[1]
    if "@" in name:
        name = name.split("@", 1)[0]
    return name.lower()


def safe_name(name: str) -> str:
    """A normalised name reduced to characters safe in paths, unit names and labels."""
    return _UNSAFE.sub("_", normalize_username(name))


def username_for_uid(uid: int) -> str | None:
    """The login name for ``uid``, or None when the host does not know it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def uid_for_username(name: str) -> int | None:
    """The uid of the login ``name``, or None when the host does not know it."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def unix_groups_of(name: str) -> set[str]:
    """Names of the Unix groups ``name`` belongs to (primary and supplementary)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return set()
    groups = {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
    with contextlib.suppress(KeyError):
        groups.add(grp.getgrgid(entry.pw_gid).gr_name)
    return groups


class UnknownUserError(ValueError):
    """A user name that no account source knows; the message says what to do."""


def require_known_user(runtime: Runtime, name: str, *, allow_unknown: bool = False) -> str:
    """``name`` normalised, when the host (passwd/NSS) or a plugin's directory knows it.

    An admin command that records something for a user by name would otherwise accept a typo
    and help nobody; ``allow_unknown`` is the explicit way to record a name ahead of its account.

    :raises UnknownUserError: nobody knows the name and ``allow_unknown`` is false.
    """
    user = normalize_username(name)
    if allow_unknown or uid_for_username(user) is not None:
        return user
    answers = runtime.hooks.user_known(runtime, user)
    if any(answers):
        return user
    sources = "this host's accounts (passwd/NSS)"
    if answers:  # a directory looked and did not find them
        sources += " or the directory"
    raise UnknownUserError(
        f"no user {user!r} in {sources}: check the spelling, or pass --allow-unknown-user "
        "to record it anyway (for an account not created yet)"
    )
