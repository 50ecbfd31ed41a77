"""Pure logic: the filters sent (exact strings), the precedence rule, and the sync plan."""

from __future__ import annotations

import datetime as dt

import attrs

from ds01_core.domain.units import Duration
from ds01_ldap.config import GroupMapping, LdapConfig
from ds01_ldap.query import (
    group_by_cn_filter,
    member_dn,
    members_of_filter,
    users_named_filter,
)
from ds01_ldap.resolve import Membership, choose, memberships
from ds01_ldap.store import SyncState
from ds01_ldap.sync import plan_sync, sync_due

MAPPING = {
    "student": GroupMapping("cn=students,ou=groups,dc=example,dc=org", 10),
    "researcher": GroupMapping("researchers", 20),
    "faculty": GroupMapping("faculty", 30),
}


# -- filters -----------------------------------------------------------------------------------


def test_active_directory_nested_filter_is_exact() -> None:
    assert (
        members_of_filter(
            "CN=GPU Users,OU=Groups,DC=corp,DC=example", user_class="user", nested=True
        )
        == "(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=GPU Users,OU=Groups,DC=corp,DC=example))"
    )
    assert (
        members_of_filter(
            "CN=GPU Users,OU=Groups,DC=corp,DC=example", user_class=None, nested=False
        )
        == "(memberOf=CN=GPU Users,OU=Groups,DC=corp,DC=example)"
    )


def test_values_are_escaped_so_a_filter_cannot_be_widened() -> None:
    assert (
        members_of_filter(r"CN=Lab (A*)\2,DC=corp", user_class="user", nested=True)
        == r"(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=Lab \28A\2a\29\5c2,DC=corp))"
    )
    assert group_by_cn_filter("gpu*") == (
        "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
        r"(objectClass=posixGroup)(objectClass=group))(cn=gpu\2a))"
    )
    assert (
        group_by_cn_filter("GPU Users", active_directory=True)
        == "(&(objectClass=group)(cn=GPU Users))"
    )


def test_user_name_filter_and_unique_member_values() -> None:
    assert users_named_filter(["alice"], attribute="uid", user_class=None) == "(uid=alice)"
    assert (
        users_named_filter(["alice", "b)ob"], attribute="sAMAccountName", user_class="user")
        == r"(&(objectClass=user)(|(sAMAccountName=alice)(sAMAccountName=b\29ob)))"
    )
    assert member_dn("uid=a,dc=x#'0101'B") == "uid=a,dc=x"
    assert member_dn("cn=a\\#b,dc=x") == "cn=a\\#b,dc=x"


# -- precedence --------------------------------------------------------------------------------


def test_highest_precedence_wins_and_says_why() -> None:
    two = choose(["student", "researcher"], MAPPING)
    assert two.group == "researcher"
    assert two.text == "in student (precedence 10) and researcher (precedence 20): researcher wins"
    three = choose(["faculty", "student", "researcher"], MAPPING)
    assert three.text == (
        "in student (precedence 10), researcher (precedence 20) and faculty (precedence 30): "
        "faculty wins"
    )
    assert choose(["student"], MAPPING).text == "in student (precedence 10) only"
    assert choose(["gone"], MAPPING) == choose([], MAPPING)
    assert choose([], MAPPING).group is None


def test_memberships_per_user() -> None:
    found = memberships(
        {"student": ["alice", "bob"], "researcher": ["alice"], "faculty": []}, MAPPING
    )
    assert found == {
        "alice": Membership(
            "researcher",
            {"researcher": "researchers", "student": "cn=students,ou=groups,dc=example,dc=org"},
        ),
        "bob": Membership("student", {"student": "cn=students,ou=groups,dc=example,dc=org"}),
    }


# -- the plan ----------------------------------------------------------------------------------


def m(group: str) -> Membership:
    return Membership(group, {group: MAPPING[group].ldap})


def test_plan_lists_joins_leaves_and_moves() -> None:
    current = {"alice": m("student"), "bob": m("student"), "carol": m("researcher")}
    desired = {"alice": m("researcher"), "bob": m("student"), "dave": m("student")}
    plan = plan_sync(current, desired, 1.0)
    assert [(c.user, c.before, c.after, c.held) for c in plan.changes] == [
        ("alice", "student", "researcher", False),
        ("carol", "researcher", None, False),
        ("dave", None, "student", False),
    ]
    assert plan.joins() == {"researcher": ["alice"], "student": ["dave"]}
    assert plan.leaves() == {"student": ["alice"], "researcher": ["carol"]}
    assert plan.held == {}


def test_removals_beyond_the_share_are_held_per_group() -> None:
    current = {u: m("student") for u in ("a", "b", "c", "d")} | {"r1": m("researcher")}
    current |= {"r2": m("researcher"), "r3": m("researcher")}
    # 3 of 4 students would leave (75% > 50%); 1 of 3 researchers (33%) may go
    desired = {"a": m("student"), "r1": m("researcher"), "r2": m("researcher"), "new": m("faculty")}
    plan = plan_sync(current, desired, 0.5)
    assert list(plan.held) == ["student"]
    assert plan.held["student"].describe(0.5) == (
        "student: would remove 3 of 4 members (75% > 50%)"
    )
    assert [c.user for c in plan.held_changes] == ["b", "c", "d"]
    assert [(c.user, c.after) for c in plan.to_apply] == [("new", "faculty"), ("r3", None)]
    exactly_half = plan_sync(current, desired | {"b": m("student")}, 0.5)
    assert exactly_half.held == {}  # 2 of 4 is not *more* than half
    confirmed = plan_sync(current, desired, 0.5, confirm=True)
    assert confirmed.held == {} and not confirmed.held_changes


# -- the schedule ------------------------------------------------------------------------------


def test_sync_due_follows_interval_retry_and_mapping() -> None:
    cfg = LdapConfig(
        servers=["ldap://x"],
        user_base_dn="dc=x",
        groups={"student": GroupMapping("cn=s,dc=x", 1)},
        sync_interval=Duration(3600),
        retry_interval=Duration(300),
    )
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)

    def ago(**kw: float) -> dt.datetime:
        return now - dt.timedelta(**kw)

    fingerprint = cfg.mapping_fingerprint()
    assert sync_due(SyncState(), cfg, now)  # never synced
    fresh = SyncState(last_success=ago(minutes=59), last_attempt=ago(minutes=59))
    assert not sync_due(attrs.evolve(fresh, fingerprint=fingerprint), cfg, now)
    assert sync_due(attrs.evolve(fresh, fingerprint="other mapping"), cfg, now)
    stale = SyncState(last_success=ago(hours=1), fingerprint=fingerprint)
    assert sync_due(stale, cfg, now)
    failed = attrs.evolve(stale, last_attempt=ago(minutes=4), last_error="down")
    assert not sync_due(failed, cfg, now)  # retry_interval not over yet
    assert sync_due(attrs.evolve(failed, last_attempt=ago(minutes=5)), cfg, now)
