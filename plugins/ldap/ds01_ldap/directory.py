"""Talking to the directory: connect (failover, TLS, bind) and read each mapped group's members.

This is the only module that does network I/O. Everything it returns is plain data (user names
already normalised), so the sync logic above it can be tested without a server and the cache
never holds anything that needs the directory to be understood.
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPNoSuchObjectResult,
    LDAPSocketOpenError,
    LDAPStartTLSError,
)

from ds01_core.api import normalize_username
from ds01_ldap.config import GroupMapping, LdapConfig, is_dn
from ds01_ldap.errors import DirectoryError, DirectoryUnreachable
from ds01_ldap.query import (
    GROUP_CLASSES,
    MEMBER_ATTRIBUTES,
    group_by_cn_filter,
    member_dn,
    members_of_filter,
    users_named_filter,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 500
#: memberUid values checked per search (each becomes one ``(uid=…)`` term)
NAMES_PER_SEARCH = 100


@attrs.frozen
class DirectoryMembers:
    """What the directory says right now: the members of each mapped ds01 group."""

    server: str
    members: dict[str, frozenset[str]]


# -- connecting --------------------------------------------------------------------------------


def read_password(path: str) -> str:
    """The bind password from its file, read at every connect so a rotated password is used."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise DirectoryError(
            f"cannot read bind_password_file {path}: {exc.strerror or exc}"
        ) from None


def _tls(cfg: LdapConfig) -> Tls:
    if cfg.ca_file and not Path(cfg.ca_file).is_file():
        raise DirectoryError(f"ca_file {cfg.ca_file} does not exist or is not a file")
    return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=cfg.ca_file)


def describe_failure(uri: str, exc: BaseException, cfg: LdapConfig) -> str:
    """One line an admin can act on, for a server that could not be used."""
    text = str(exc)
    if isinstance(exc, LDAPStartTLSError | LDAPSocketOpenError) and "CERTIFICATE_VERIFY" in text:
        ca = f"the CA in {cfg.ca_file}" if cfg.ca_file else "the system's trusted CAs"
        return (
            f"{uri}: TLS refused: the server's certificate is not signed by {ca} "
            f"(certificate verify failed)"
        )
    if isinstance(exc, LDAPInvalidCredentialsResult):
        return f"{uri}: bind as {cfg.bind_dn or 'anonymous'} refused: invalid credentials"
    if "doesn't match any name" in text:
        host = urllib.parse.urlsplit(uri).hostname
        return f"{uri}: TLS refused: the server's certificate does not name {host}"
    return f"{uri}: {text}"


def _open(uri: str, cfg: LdapConfig, password: str | None) -> Connection:
    use_ssl = uri.lower().startswith("ldaps://")
    server = Server(
        uri,
        use_ssl=use_ssl,
        tls=_tls(cfg) if use_ssl or cfg.start_tls else None,
        connect_timeout=float(cfg.connect_timeout),
        get_info=NONE,
    )
    conn = Connection(
        server,
        user=cfg.bind_dn,
        password=password,
        # ldap3 packs it into SO_RCVTIMEO as whole seconds
        receive_timeout=max(1, math.ceil(cfg.receive_timeout)),
        raise_exceptions=True,
        read_only=True,
        auto_referrals=False,
    )
    try:
        conn.open()
        if cfg.start_tls and not conn.start_tls():
            raise DirectoryError(f"StartTLS refused by {uri}")
        conn.bind()
    except BaseException:
        _close(conn)
        raise
    return conn


def _close(conn: Connection) -> None:
    """Unbind, ignoring a socket a failed handshake already closed (the first error is the
    one worth reporting)."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


def connect(cfg: LdapConfig) -> tuple[Connection, str]:
    """A bound connection to the first server in ``servers`` that works, and its URI.

    Servers are tried in order (failover); each failure is kept with its reason, so an
    unreachable directory is reported as "server 1: connection refused; server 2: TLS refused".
    """
    password = read_password(cfg.bind_password_file) if cfg.bind_password_file else None
    attempts: list[str] = []
    for uri in cfg.servers:
        try:
            return _open(uri, cfg, password), uri
        except (LDAPException, OSError, DirectoryError) as exc:
            attempts.append(describe_failure(uri, exc, cfg))
            log.debug("LDAP server %s failed: %s", uri, exc)
    raise DirectoryUnreachable(attempts)


# -- reading groups ----------------------------------------------------------------------------


def _values(attributes: dict[str, Any], name: str) -> list[str]:
    """An attribute's values, whatever the case the server spelt its name in."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if value is None:
                return []
            return [str(v) for v in (value if isinstance(value, list) else [value])]
    return []


def _is_group(attributes: dict[str, Any]) -> bool:
    classes = {c.lower() for c in _values(attributes, "objectClass")}
    return any(c.lower() in classes for c in GROUP_CLASSES)


def _search(
    conn: Connection, base: str, flt: str, attributes: list[str], scope: str = SUBTREE
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dn, attributes) of each entry found, paged so large directories are read completely."""
    if scope == BASE:
        conn.search(base, flt, BASE, attributes=attributes)
        entries: Iterable[dict[str, Any]] = conn.response or []
    else:
        entries = conn.extend.standard.paged_search(
            base, flt, scope, attributes=attributes, paged_size=PAGE_SIZE, generator=True
        )
    for entry in entries:
        if entry.get("type") == "searchResEntry":
            yield entry["dn"], dict(entry.get("attributes") or {})


class _Reader:
    """One sync's reads, with a per-sync cache of member DNs already looked up."""

    def __init__(self, conn: Connection, cfg: LdapConfig):
        self.conn = conn
        self.cfg = cfg
        self.entries: dict[str, dict[str, Any] | None] = {}

    def entry(self, dn: str) -> dict[str, Any] | None:
        """The attributes of ``dn`` (None when it does not exist: a dangling member)."""
        key = dn.lower()
        if key not in self.entries:
            try:
                found = list(
                    _search(
                        self.conn,
                        dn,
                        "(objectClass=*)",
                        ["objectClass", self.cfg.username_attribute, *MEMBER_ATTRIBUTES],
                        scope=BASE,
                    )
                )
            except LDAPNoSuchObjectResult:
                found = []
            self.entries[key] = found[0][1] if found else None
        return self.entries[key]

    def find_group(self, ldap: str) -> tuple[str, dict[str, Any]]:
        """The group a mapping names (a DN, or a cn under ``group_base_dn``) and its entry."""
        if is_dn(ldap):
            attributes = self.entry(ldap)
            if attributes is None or not _is_group(attributes):
                what = "does not exist" if attributes is None else "is not a group"
                raise DirectoryError(f"LDAP group {ldap!r} {what}")
            return ldap, attributes
        found = list(
            _search(
                self.conn,
                self.cfg.group_base_dn,
                group_by_cn_filter(ldap, active_directory=self.cfg.is_ad),
                ["objectClass", *MEMBER_ATTRIBUTES],
            )
        )
        if not found:
            raise DirectoryError(f"no LDAP group with cn={ldap!r} under {self.cfg.group_base_dn}")
        if len(found) > 1:
            dns = ", ".join(dn for dn, _ in found)
            raise DirectoryError(f"cn={ldap!r} names several groups ({dns}); map it by DN")
        return found[0]

    def members(self, mapping: GroupMapping) -> frozenset[str]:
        """The normalised user names in the group ``mapping`` names."""
        dn, attributes = self.find_group(mapping.ldap)
        if self.cfg.is_ad:
            return self._members_by_memberof(dn)
        return frozenset(self._members_from_entry(dn, attributes, seen=set()))

    def _members_by_memberof(self, group_dn: str) -> frozenset[str]:
        """Active Directory: ask for the users whose memberOf (in chain, when nested) is the
        group; the server expands nesting, and big groups need no ranged ``member`` reads."""
        flt = members_of_filter(
            group_dn, user_class=self.cfg.user_class, nested=self.cfg.expand_nested
        )
        attribute = self.cfg.username_attribute
        names = set()
        for _dn, attributes in _search(self.conn, self.cfg.user_base_dn, flt, [attribute]):
            values = _values(attributes, attribute)
            if values:
                names.add(normalize_username(values[0]))
        return frozenset(names)

    def _members_from_entry(self, dn: str, attributes: dict[str, Any], seen: set[str]) -> set[str]:
        """``member``/``uniqueMember`` DNs resolved to users (and, with nested groups, through
        member groups), plus ``memberUid`` names that exist as users."""
        seen.add(dn.lower())
        names: set[str] = set()
        attribute = self.cfg.username_attribute
        dns = [member_dn(v) for a in ("member", "uniqueMember") for v in _values(attributes, a)]
        for member in dns:
            entry = self.entry(member)
            if entry is None:
                log.debug("member %s of %s does not exist; ignored", member, dn)
            elif _is_group(entry):
                if self.cfg.expand_nested and member.lower() not in seen:
                    names |= self._members_from_entry(member, entry, seen)
            elif _values(entry, attribute):
                names.add(normalize_username(_values(entry, attribute)[0]))
        names |= self._existing_users(_values(attributes, "memberUid"))
        return names

    def _existing_users(self, uids: list[str]) -> set[str]:
        """The memberUid values that name a user under ``user_base_dn``: a posixGroup keeps a
        deleted user's name until someone edits the group, and a deleted user must leave."""
        attribute = self.cfg.username_attribute
        found: set[str] = set()
        for start in range(0, len(uids), NAMES_PER_SEARCH):
            chunk = uids[start : start + NAMES_PER_SEARCH]
            flt = users_named_filter(chunk, attribute=attribute, user_class=self.cfg.user_class)
            for _dn, entry in _search(self.conn, self.cfg.user_base_dn, flt, [attribute]):
                found.update(normalize_username(v) for v in _values(entry, attribute))
        return {normalize_username(u) for u in uids} & found


def fetch_members(cfg: LdapConfig) -> DirectoryMembers:
    """Read every mapped group's members from the first working server.

    Raises :class:`DirectoryUnreachable` when no server can be used and
    :class:`DirectoryError` when a mapped group is missing or a search fails, so that a partial
    read can never be taken for the truth.
    """
    conn, uri = connect(cfg)
    try:
        reader = _Reader(conn, cfg)
        members = {name: reader.members(mapping) for name, mapping in cfg.groups.items()}
    except LDAPCommunicationError as exc:  # the server went away mid-read
        raise DirectoryUnreachable([describe_failure(uri, exc, cfg)]) from exc
    except LDAPException as exc:
        raise DirectoryError(f"{uri}: search failed: {exc}") from exc
    finally:
        _close(conn)
    return DirectoryMembers(server=uri, members=members)


def user_exists(cfg: LdapConfig, user: str) -> bool:
    """Whether a user named ``user`` (``user_attribute``) exists under ``user_base_dn``: one
    search on the first working server, for an admin command about a name the host does not
    know. Raises :class:`DirectoryUnreachable` or :class:`DirectoryError` when it cannot tell.
    """
    conn, uri = connect(cfg)
    attribute = cfg.username_attribute
    flt = users_named_filter([user], attribute=attribute, user_class=cfg.user_class)
    try:
        found = _search(conn, cfg.user_base_dn, flt, [attribute])
        wanted = normalize_username(user)
        return any(
            normalize_username(value) == wanted
            for _dn, attributes in found
            for value in _values(attributes, attribute)
        )
    except LDAPCommunicationError as exc:
        raise DirectoryUnreachable([describe_failure(uri, exc, cfg)]) from exc
    except LDAPException as exc:
        raise DirectoryError(f"{uri}: search failed: {exc}") from exc
    finally:
        _close(conn)
