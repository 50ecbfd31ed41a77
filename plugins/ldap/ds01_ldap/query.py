"""LDAP search filters, built in one place so each can be tested for the exact string it sends.

Every value put into a filter is escaped (RFC 4515), so a group name or user name with ``*``,
``(`` or ``\\`` can never widen a search.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through any depth of nesting.
IN_CHAIN = "1.2.840.113556.1.4.1941"

#: Object classes that make an entry a group, for the kinds this plugin reads.
GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "posixGroup", "group")

#: Attributes holding a group's members: DNs (``member``, ``uniqueMember``) or names
#: (``memberUid``).
MEMBER_ATTRIBUTES = ("member", "uniqueMember", "memberUid")


_FILTER_ESCAPES = {ord(c): f"\\{ord(c):02x}" for c in "\\*()\0"}


def escape_filter_chars(value: str) -> str:
    """RFC 4515 escaping of a value inside a filter: ``\\``, ``*``, ``(``, ``)`` and NUL."""
    return value.translate(_FILTER_ESCAPES)


def _and(*parts: str) -> str:
    parts = tuple(p for p in parts if p)
    return parts[0] if len(parts) == 1 else f"(&{''.join(parts)})"


def _class(object_class: str | None) -> str:
    return f"(objectClass={escape_filter_chars(object_class)})" if object_class else ""


def group_by_cn_filter(cn: str, *, active_directory: bool = False) -> str:
    """Find a group by its cn: ``(&(objectClass=group)(cn=GPU Users))`` on AD, any of
    :data:`GROUP_CLASSES` otherwise."""
    classes = (
        "(objectClass=group)"
        if active_directory
        else "(|" + "".join(f"(objectClass={c})" for c in GROUP_CLASSES) + ")"
    )
    return f"(&{classes}(cn={escape_filter_chars(cn)}))"


def members_of_filter(group_dn: str, *, user_class: str | None, nested: bool) -> str:
    """Users that are members of ``group_dn`` through their ``memberOf`` attribute.

    ``nested`` uses :data:`IN_CHAIN`, which Active Directory evaluates server-side through any
    depth of nested groups:
    ``(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=GPU Users,OU=Groups,DC=corp,DC=example))``.
    """
    rule = f":{IN_CHAIN}:" if nested else ""
    return _and(_class(user_class), f"(memberOf{rule}={escape_filter_chars(group_dn)})")


def users_named_filter(names: Iterable[str], *, attribute: str, user_class: str | None) -> str:
    """Users whose ``attribute`` is one of ``names`` (to check that memberUid values exist):
    ``(|(uid=alice)(uid=bob))``, within ``(objectClass=…)`` when a user class is set."""
    terms = [f"({attribute}={escape_filter_chars(name)})" for name in names]
    if not terms:
        raise ValueError("no names to search for")
    either = terms[0] if len(terms) == 1 else f"(|{''.join(terms)})"
    return _and(_class(user_class), either)


def member_dn(value: str) -> str:
    """A ``uniqueMember`` value without its optional ``#'0101'B`` unique-identifier suffix."""
    head, sep, tail = value.rpartition("#")
    return head if sep and tail.startswith("'") and tail.endswith("'B") else value
