"""The ``plugins.ldap:`` configuration section and its checks.

Structure (types, unknown keys) is checked by the core's converter; the checks that span fields
(a URI's scheme, a DN's syntax, distinct precedences …) are returned by ``config_problems``,
which the core reports with their full paths (``plugins.ldap.servers[0]: …``) alongside every
other problem of the file.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterable
from typing import Literal

import attrs

from ds01_core.api import AbsPath, Duration

Directory = Literal["openldap", "active_directory"]


@attrs.define
class GroupMapping:
    """One ds01 group's LDAP source: a group DN, or a cn searched under ``group_base_dn``."""

    ldap: str
    precedence: int = 0

    @property
    def by_dn(self) -> bool:
        return is_dn(self.ldap)


@attrs.define
class LdapConfig:
    """``plugins.ldap``: where the directory is, how to reach it safely, and what maps to what.

    Every field has a default, so an installed but unconfigured plugin (no ``groups``) is inert:
    it never connects and never answers ``user_group``.
    """

    servers: list[str] = attrs.Factory(list)
    bind_dn: str | None = None
    bind_password_file: AbsPath | None = None
    start_tls: bool = False
    ca_file: AbsPath | None = None
    connect_timeout: Duration = Duration(5)
    receive_timeout: Duration = Duration(10)
    directory: Directory = "openldap"
    user_base_dn: str = ""
    group_base_dn: str = ""
    user_attribute: str | None = None
    user_object_class: str | None = None
    nested_groups: bool | None = None
    groups: dict[str, GroupMapping] = attrs.Factory(dict)
    sync_interval: Duration = Duration(3600)
    retry_interval: Duration = Duration(300)
    max_removal_share: float = 0.5

    def config_problems(self) -> list[Problem]:
        """Cross-field checks, reported by the core with their paths (``plugins.ldap.…``)."""
        return check(self)

    # -- values with directory-dependent defaults ---------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether there is anything to sync (an unconfigured section is inert)."""
        return bool(self.groups and self.servers)

    @property
    def is_ad(self) -> bool:
        return self.directory == "active_directory"

    @property
    def username_attribute(self) -> str:
        return self.user_attribute or ("sAMAccountName" if self.is_ad else "uid")

    @property
    def user_class(self) -> str | None:
        return self.user_object_class or ("user" if self.is_ad else None)

    @property
    def expand_nested(self) -> bool:
        """Nested groups: on by default for Active Directory, off otherwise."""
        return self.is_ad if self.nested_groups is None else self.nested_groups

    def mapping_fingerprint(self) -> str:
        """A digest of everything that decides membership: a change makes a sync due at once."""
        data = {
            "groups": {k: [v.ldap, v.precedence] for k, v in sorted(self.groups.items())},
            "directory": self.directory,
            "user_base_dn": self.user_base_dn,
            "group_base_dn": self.group_base_dn,
            "user_attribute": self.username_attribute,
            "user_object_class": self.user_class,
            "nested": self.expand_nested,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def advice(cfg: LdapConfig, defined_groups: Iterable[str]) -> list[str]:
    """Settings that work but are probably wrong: said by the daemon and ``admin ldap sync``
    (not by every ``ds01`` command a user runs)."""
    notes = []
    undefined = sorted(set(cfg.groups) - set(defined_groups))
    if undefined:
        notes.append(
            f"plugins.ldap.groups maps {', '.join(undefined)}, not defined in limits.groups: "
            "those users get the configuration file's group instead"
        )
    cleartext = [s for s in cfg.servers if s.lower().startswith("ldap://")]
    if cfg.bind_dn and cleartext and not cfg.start_tls:
        notes.append(
            f"plugins.ldap binds as {cfg.bind_dn} over unencrypted {', '.join(cleartext)}: "
            "use ldaps:// or start_tls: true"
        )
    return notes


def is_dn(value: str) -> bool:
    """A group given as ``cn=…,ou=…`` rather than a bare cn (a cn with ``=`` is not supported)."""
    return "=" in value


def _valid_dn(value: str) -> str | None:
    """None for a well-formed DN, else the problem (ldap3's parser, imported only when a
    configuration names a DN)."""
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    try:
        parse_dn(value)
    except LDAPInvalidDnError as exc:
        return f"not a valid DN ({exc}): {value!r}"
    return None


def _check_uri(uri: str) -> str | None:
    parsed = urllib.parse.urlsplit(uri)
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme.lower() not in ("ldap", "ldaps") or not parsed.hostname or port == -1:
        return f"expected ldap://host[:port] or ldaps://host[:port], got {uri!r}"
    if parsed.path not in ("", "/") or parsed.query:
        return f"give only scheme, host and port (no base DN or query), got {uri!r}"
    return None


Problem = tuple[tuple[str | int, ...], str]


def check(cfg: LdapConfig) -> list[Problem]:
    """Cross-field problems as (path inside the section, message); empty when all is well."""
    problems: list[Problem] = []
    for index, uri in enumerate(cfg.servers):
        message = _check_uri(uri)
        if message:
            problems.append((("servers", index), message))
        elif cfg.start_tls and uri.lower().startswith("ldaps://"):
            problems.append(
                (("servers", index), "start_tls is for ldap:// URIs; ldaps:// is already TLS")
            )
    if cfg.groups and not cfg.servers:
        problems.append((("servers",), "name at least one server when groups are mapped"))
    if cfg.bind_dn is not None:
        message = _valid_dn(cfg.bind_dn)
        if message:
            problems.append((("bind_dn",), message))
        if not cfg.bind_password_file:
            problems.append(
                (
                    ("bind_password_file",),
                    "required with bind_dn: a root-only file holding the password "
                    "(never the password itself in this file)",
                )
            )
    elif cfg.bind_password_file:
        problems.append((("bind_dn",), "required with bind_password_file"))
    for name in ("connect_timeout", "receive_timeout"):
        if getattr(cfg, name) <= 0:
            problems.append(((name,), "must be greater than 0"))
    if not 0 <= cfg.max_removal_share <= 1:
        problems.append(
            (("max_removal_share",), f"must be between 0 and 1, got {cfg.max_removal_share}")
        )
    for name in ("user_base_dn", "group_base_dn"):
        value = getattr(cfg, name)
        message = _valid_dn(value) if value else None
        if message:
            problems.append(((name,), message))
    if cfg.groups and not cfg.user_base_dn:
        problems.append((("user_base_dn",), "required when groups are mapped"))
    by_precedence: dict[int, str] = {}
    for name, mapping in cfg.groups.items():
        if not mapping.ldap.strip():
            problems.append((("groups", name, "ldap"), "must name an LDAP group (a DN or a cn)"))
        elif mapping.by_dn:
            message = _valid_dn(mapping.ldap)
            if message:
                problems.append((("groups", name, "ldap"), message))
        elif not cfg.group_base_dn:
            problems.append(
                (
                    ("groups", name, "ldap"),
                    f"a cn ({mapping.ldap!r}) is searched under group_base_dn, which is not set; "
                    "set it or give the group's full DN",
                )
            )
        other = by_precedence.setdefault(mapping.precedence, name)
        if other != name:
            problems.append(
                (
                    ("groups", name, "precedence"),
                    f"{mapping.precedence} is also {other!r}'s precedence; give each group its "
                    "own, so that a user in both has a defined group",
                )
            )
    return problems
