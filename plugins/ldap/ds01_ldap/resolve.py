"""Which ds01 group a user gets when the directory puts them in several, and why.

Pure functions over the configuration's mapping: the same rule picks the group at sync time and
explains it later (``ds01 admin ldap show``, ``ds01 config show --user``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from ds01_ldap.config import GroupMapping


@attrs.frozen
class Membership:
    """A user's place according to the directory: the chosen ds01 group and every mapped group
    they are in (ds01 group → the LDAP group as configured)."""

    group: str
    ldap_groups: dict[str, str]


@attrs.frozen
class Choice:
    """The group chosen for a user (None: in no mapped group) and the sentence saying why."""

    group: str | None
    text: str


def _phrase(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def choose(matched: Iterable[str], groups: Mapping[str, GroupMapping]) -> Choice:
    """The highest-``precedence`` group among ``matched`` (groups no longer mapped are ignored).

    >>> m = {"student": GroupMapping("s", 10), "researcher": GroupMapping("r", 20)}
    >>> choose(["student", "researcher"], m).text
    'in student (precedence 10) and researcher (precedence 20): researcher wins'
    """
    mapped = sorted(
        (name for name in set(matched) if name in groups),
        key=lambda name: (groups[name].precedence, name),
    )
    if not mapped:
        return Choice(None, "in no mapped LDAP group")
    described = [f"{name} (precedence {groups[name].precedence})" for name in mapped]
    winner = mapped[-1]
    if len(mapped) == 1:
        return Choice(winner, f"in {described[0]} only")
    return Choice(winner, f"in {_phrase(described)}: {winner} wins")


def memberships(
    members: Mapping[str, Iterable[str]], groups: Mapping[str, GroupMapping]
) -> dict[str, Membership]:
    """Per user, from per-group member lists: the chosen group and the mapped groups matched."""
    matched: dict[str, dict[str, str]] = {}
    for group, users in members.items():
        for user in users:
            matched.setdefault(user, {})[group] = groups[group].ldap
    result = {}
    for user, ldap_groups in sorted(matched.items()):
        chosen = choose(ldap_groups, groups).group
        if chosen is not None:
            result[user] = Membership(chosen, dict(sorted(ldap_groups.items())))
    return result
