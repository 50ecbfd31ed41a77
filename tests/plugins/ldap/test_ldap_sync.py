"""Syncing against a real slapd: group kinds, precedence, removals, outages, failover, TLS."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ds01_core.domain.user_limits import effective_limits
from ds01_core.framework.runtime import Runtime
from ds01_ldap import explain, explain_user_group, run_sync
from ds01_ldap.store import read_memberships, read_pending, read_sync_state
from tests.plugins.ldap.slapd import GROUPS, Slapd, free_port, user_dn

RuntimeFactory = Callable[..., Runtime]


def cache(runtime: Runtime) -> dict[str, str]:
    return {user: row.group for user, row in read_memberships(runtime.state.db).items()}


def summary(events: list[Any]) -> list[tuple[str, str | None, Any]]:
    return [(e.event_type, e.user, e.details.get("group")) for e in events]


BASE_CACHE = {"alice": "researcher", "bob": "student", "carol": "researcher", "dave": "student"}


def test_both_group_kinds_resolve_and_user_group_answers_from_the_cache(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    assert runtime.plugins.record("ldap").distribution == "ds01-ldap"
    assert effective_limits(runtime, "bob").group is None  # no sync yet: the file decides
    events = runtime.hooks.reconcile(runtime, [])
    # students is a groupOfNames (member DNs), researchers a posixGroup (memberUid);
    # memberUid "Carol" is normalised, "ghost" has no user entry, faculty's nesting is off
    assert cache(runtime) == BASE_CACHE
    assert summary(events) == [
        ("group.member_added", "alice", "researcher"),
        ("group.member_added", "bob", "student"),
        ("group.member_added", "carol", "researcher"),
        ("group.member_added", "dave", "student"),
        ("ldap.sync", None, None),
    ]
    assert events[-1].details["server"] == slapd.uri
    assert events[0].details["ldap_groups"] == {
        "researcher": "researchers",
        "student": f"cn=students,{GROUPS}",
    }
    # through the plugin manager, as limits are resolved everywhere
    limits = effective_limits(runtime, "Alice@EXAMPLE.ORG")
    assert (limits.group, limits["max_gpu_equivalents"]) == ("researcher", 2)
    assert effective_limits(runtime, "EXAMPLE\\Dave").group == "student"
    assert effective_limits(runtime, "frank").group is None
    assert runtime.hooks.user_group(runtime, "ghost") is None


def test_user_group_never_calls_the_directory(
    own_slapd: Slapd, ldap_runtime: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = ldap_runtime(own_slapd)
    with caplog.at_level(logging.WARNING, logger="ds01_ldap"):
        runtime.hooks.reconcile(runtime, [])
        own_slapd.stop()
        assert runtime.hooks.user_group(runtime, "carol") == "researcher"
        assert runtime.hooks.reconcile(runtime, []) == []  # synced less than an hour ago
    # the daemon says once per configuration what looks wrong (a password sent in the clear)
    assert [r.getMessage() for r in caplog.records] == [
        f"plugins.ldap binds as cn=reader,dc=example,dc=org over unencrypted {own_slapd.uri}: "
        "use ldaps:// or start_tls: true"
    ]


def test_several_groups_highest_precedence_wins_and_is_explained(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    assert explain_user_group(runtime, "alice") == (
        "LDAP: no sync has run yet; the configuration file decides"
    )
    run_sync(runtime)
    text = explain_user_group(runtime, "ALICE")
    assert text is not None
    assert re.fullmatch(
        r"LDAP: in student \(precedence 10\) and researcher \(precedence 20\): researcher wins "
        r"\(last sync \d{4}-\d\d-\d\dT[\d:.]+Z\)",
        text,
    ), text
    found = explain(runtime, "alice")
    assert found is not None and found.group == "researcher"
    assert found.ldap_groups == {"researcher": "researchers", "student": f"cn=students,{GROUPS}"}
    assert explain_user_group(runtime, "bob").startswith("LDAP: in student (precedence 10) only")
    assert explain_user_group(runtime, "frank").startswith("LDAP: in no mapped LDAP group")


def test_nested_groups_are_followed_when_enabled(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd, nested_groups=True)
    run_sync(runtime)
    # faculty holds the group professors, which holds Erin (uid spelt with a capital)
    assert cache(runtime) == BASE_CACHE | {"erin": "faculty"}
    assert effective_limits(runtime, "erin").group == "faculty"


def test_user_removed_from_the_directory_leaves_on_the_next_sync(
    own_slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(own_slapd, sync_interval="0s")
    runtime.hooks.reconcile(runtime, [])
    own_slapd.ldapmodify(f"dn: {user_dn('bob')}\nchangetype: delete\n")
    own_slapd.ldapmodify(
        f"dn: cn=researchers,{GROUPS}\nchangetype: modify\ndelete: memberUid\nmemberUid: Carol\n"
    )
    events = runtime.hooks.reconcile(runtime, [])
    assert summary(events) == [
        ("group.member_removed", "bob", "student"),
        ("group.member_removed", "carol", "researcher"),
        ("ldap.sync", None, None),
    ]
    assert events[-1].details["leaves"] == {"student": ["bob"], "researcher": ["carol"]}
    assert cache(runtime) == {"alice": "researcher", "dave": "student"}
    assert effective_limits(runtime, "bob").group is None
    assert runtime.hooks.reconcile(runtime, []) == []  # nothing changed since


def test_directory_down_mid_run_keeps_the_last_known_membership(
    own_slapd: Slapd, ldap_runtime: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = ldap_runtime(own_slapd, sync_interval="0s", retry_interval="0s")
    runtime.hooks.reconcile(runtime, [])
    own_slapd.stop()
    with caplog.at_level(logging.WARNING, logger="ds01_ldap"):
        events = runtime.hooks.reconcile(runtime, [])
    assert [e.event_type for e in events] == ["ldap.unreachable"]
    details = events[0].details
    assert details["kept_users"] == 4
    assert len(details["attempts"]) == 1
    assert details["attempts"][0].startswith(f"{own_slapd.uri}: socket connection error")
    assert "Connection refused" in details["attempts"][0]
    assert "keeping the last known membership of 4 user(s)" in caplog.text
    assert cache(runtime) == BASE_CACHE
    assert effective_limits(runtime, "alice").group == "researcher"
    state = read_sync_state(runtime.state.db)
    assert state.last_error is not None and state.last_success is not None
    own_slapd.start()  # back up: the next sync succeeds and clears the error
    assert runtime.hooks.reconcile(runtime, []) == []
    assert read_sync_state(runtime.state.db).last_error is None


def test_failover_to_the_second_server(slapd: Slapd, ldap_runtime: RuntimeFactory) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    runtime = ldap_runtime(slapd, servers=[dead, slapd.uri], connect_timeout="2s")
    outcome = run_sync(runtime)
    assert outcome.error is None and outcome.server == slapd.uri
    assert cache(runtime) == BASE_CACHE
    assert read_sync_state(runtime.state.db).server == slapd.uri


def test_start_tls_with_the_right_ca_and_refused_with_a_bad_one(
    slapd: Slapd, ldap_runtime: RuntimeFactory, pki: Any
) -> None:
    good = ldap_runtime(slapd, start_tls=True, ca_file=str(pki.ca))
    assert run_sync(good).error is None
    assert cache(good) == BASE_CACHE
    bad = ldap_runtime(slapd, start_tls=True, ca_file=str(pki.other_ca), sync_interval="0s")
    outcome = run_sync(bad)
    assert outcome.error == (
        f"no LDAP server reachable: {slapd.uri}: TLS refused: the server's certificate is not "
        f"signed by the CA in {pki.other_ca} (certificate verify failed)"
    )
    assert [e.event_type for e in outcome.events] == ["ldap.unreachable"]
    assert cache(bad) == BASE_CACHE  # same state store: the last known membership stays
    assert bad.hooks.user_group(bad, "alice") == "researcher"


def test_tls_checks_the_host_name(slapd: Slapd, ldap_runtime: RuntimeFactory, pki: Any) -> None:
    # 127.1 reaches the same server, but the certificate names only 127.0.0.1 and localhost
    uri = slapd.uri.replace("127.0.0.1", "127.1")
    outcome = run_sync(ldap_runtime(slapd, servers=[uri], start_tls=True, ca_file=str(pki.ca)))
    assert outcome.error == (
        f"no LDAP server reachable: {uri}: TLS refused: the server's certificate does not "
        "name 127.1"
    )


def test_ldaps_checks_the_ca_too(slapd: Slapd, ldap_runtime: RuntimeFactory, pki: Any) -> None:
    assert (
        run_sync(ldap_runtime(slapd, servers=[slapd.ldaps_uri], ca_file=str(pki.ca))).error is None
    )
    refused = run_sync(ldap_runtime(slapd, servers=[slapd.ldaps_uri], ca_file=str(pki.other_ca)))
    assert refused.error is not None and "TLS refused" in refused.error


def test_wrong_bind_password_is_a_clear_error(
    slapd: Slapd, ldap_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-it\n")
    outcome = run_sync(ldap_runtime(slapd, bind_password_file=str(wrong)))
    assert outcome.error == (
        f"no LDAP server reachable: {slapd.uri}: bind as cn=reader,dc=example,dc=org refused: "
        "invalid credentials"
    )
    missing = run_sync(ldap_runtime(slapd, bind_password_file=str(tmp_path / "nope")))
    assert missing.error == (
        f"cannot read bind_password_file {tmp_path / 'nope'}: No such file or directory"
    )


def test_a_missing_mapped_group_fails_the_sync_without_touching_the_cache(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    run_sync(runtime)
    groups = {"student": {"ldap": "students-renamed", "precedence": 10}}
    broken = ldap_runtime(slapd, groups=groups)
    outcome = run_sync(broken)
    assert outcome.error == f"no LDAP group with cn='students-renamed' under {GROUPS}"
    assert [e.event_type for e in outcome.events] == ["ldap.sync_failed"]
    assert cache(broken) == BASE_CACHE
    assert read_pending(broken.state.db) is None


def test_sync_runs_when_the_interval_passed_or_the_mapping_changed(
    slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    assert runtime.hooks.reconcile(runtime, [])
    assert runtime.hooks.reconcile(runtime, []) == []  # within sync_interval (1h)
    swapped = {
        "student": {"ldap": f"cn=students,{GROUPS}", "precedence": 30},
        "researcher": {"ldap": "researchers", "precedence": 20},
    }
    changed = ldap_runtime(slapd, groups=swapped)  # same store, new precedence
    events = changed.hooks.reconcile(changed, [])
    assert summary(events) == [
        ("group.member_removed", "alice", "researcher"),
        ("group.member_added", "alice", "student"),
        ("ldap.sync", None, None),
    ]
