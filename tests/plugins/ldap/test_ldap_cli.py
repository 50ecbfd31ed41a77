"""``ds01 admin ldap sync|show`` through click, on a copy of the real ``ds01`` command tree."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import ds01_ldap
from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import Runtime
from ds01_ldap.store import read_memberships, read_pending
from tests.plugins.ldap.slapd import GROUPS, Slapd, free_port, user_dn

RuntimeFactory = Callable[..., Runtime]


def fresh_cli() -> click.Group:
    """A copy of the ``ds01`` root group (and of its ``admin`` group) to add plugin commands
    to, so that a test never changes the process-wide ``ds01_core.transports.cli.cli``."""
    from ds01_core.transports.cli import cli

    root = copy.copy(cli)
    root.commands = dict(cli.commands)
    admin = root.commands.get("admin")
    if isinstance(admin, click.Group):
        admin = copy.copy(admin)
        admin.commands = dict(admin.commands)
        root.commands["admin"] = admin
    return root


@pytest.fixture(scope="module")
def root() -> click.Group:
    """``ds01`` with the plugin's commands added the way ``ds01_core.transports.cli.main`` adds them."""
    cli = fresh_cli()
    ds01_ldap.add_cli_commands(cli=cli)
    return cli


def invoke(root: click.Group, runtime: Runtime, *args: str) -> Result:
    return CliRunner().invoke(
        root, ["--config", str(runtime.config.source), "admin", "ldap", *args]
    )


def logged(runtime: Runtime, prefix: str = "") -> list[tuple[str, str | None, Any]]:
    records = EventLog(runtime.config.paths.event_log_path).query(type_prefix=prefix or None)
    return [(r["event_type"], r["user"], r["details"].get("group")) for r in records]


def cache(runtime: Runtime) -> dict[str, str]:
    return {user: row.group for user, row in read_memberships(runtime.state.db).items()}


def test_commands_go_under_admin_or_stand_alone() -> None:
    with_admin = fresh_cli()
    ds01_ldap.add_cli_commands(cli=with_admin)
    admin = with_admin.commands["admin"]
    assert isinstance(admin, click.Group)
    assert set(admin.commands["ldap"].commands) == {"sync", "show"}  # type: ignore[attr-defined]
    assert "ldap" not in with_admin.commands
    from ds01_core.transports.cli import cli

    assert "ldap" not in cli.commands["admin"].commands  # type: ignore[attr-defined]
    bare = click.Group("ds01")
    ds01_ldap.add_cli_commands(cli=bare)
    assert "ldap" in bare.commands
    taken = click.Group("ds01", commands={"admin": click.Group("admin")})
    taken.commands["admin"].add_command(click.Command("ldap"))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'admin ldap' is already taken"):
        ds01_ldap.add_cli_commands(cli=taken)


def test_dry_run_json_shows_joins_and_changes_nothing(
    root: click.Group, slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    result = invoke(root, runtime, "sync", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["applied"] is False
    assert data["server"] == slapd.uri
    assert data["joins"] == {"researcher": ["alice", "carol"], "student": ["bob", "dave"]}
    assert data["leaves"] == {}
    assert data["held_groups"] == {} and data["confirm_with"] is None
    assert data["changes"][0] == {
        "user": "alice",
        "from": None,
        "to": "researcher",
        "ldap_groups": {"researcher": "researchers", "student": f"cn=students,{GROUPS}"},
        "held": False,
    }
    assert cache(runtime) == {}
    assert logged(runtime) == []
    assert result.stderr == (
        f"Warning: plugins.ldap binds as cn=reader,dc=example,dc=org over unencrypted "
        f"{slapd.uri}: use ldaps:// or start_tls: true\n"
    )


def test_sync_applies_logs_and_show_explains(
    root: click.Group, slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    result = invoke(root, runtime, "sync")
    assert result.exit_code == 0, result.output
    assert f"LDAP sync from {slapd.uri}\n" in result.output
    assert "alice  -     researcher  applied" in result.output
    assert "join researcher: alice, carol\njoin student: bob, dave\n" in result.output
    assert "4 change(s) applied, 0 held; 4 user(s) in mapped LDAP groups" in result.output
    assert logged(runtime) == [
        ("group.member_added", "alice", "researcher"),
        ("group.member_added", "bob", "student"),
        ("group.member_added", "carol", "researcher"),
        ("group.member_added", "dave", "student"),
        ("ldap.sync", None, None),
    ]
    record = EventLog(runtime.config.paths.event_log_path).query(type_prefix="ldap.sync")[0]
    assert record["source"] == "ldap" and record["details"]["by"] == "root"

    shown = invoke(root, runtime, "show", "Alice@EXAMPLE.ORG")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "user:        alice"
    assert lines[1] == "ds01 group:  researcher"
    assert lines[2].startswith(
        "why:         in student (precedence 10) and researcher (precedence 20): researcher wins"
    )
    assert f"student     10          cn=students,{GROUPS}" in shown.output
    data = json.loads(invoke(root, runtime, "show", "alice", "--json").stdout)
    assert data["ds01_group"] == "researcher" and data["server"] == slapd.uri
    assert data["ldap_groups"] == [
        {"ds01_group": "researcher", "ldap_group": "researchers", "precedence": 20},
        {"ds01_group": "student", "ldap_group": f"cn=students,{GROUPS}", "precedence": 10},
    ]
    nobody = json.loads(invoke(root, runtime, "show", "frank", "--json").stdout)
    assert nobody["ds01_group"] is None and nobody["ldap_groups"] == []


def test_mass_removal_is_held_until_confirmed(
    root: click.Group, own_slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(own_slapd, sync_interval="0s")
    assert invoke(root, runtime, "sync").exit_code == 0
    # both students (bob, dave) vanish from the group at once: 100% > max_removal_share 50%
    own_slapd.ldapmodify(
        f"dn: cn=students,{GROUPS}\nchangetype: modify\ndelete: member\n"
        f"member: {user_dn('bob')}\nmember: {user_dn('dave')}\n"
    )
    events = runtime.hooks.reconcile(runtime, [])
    for event in events:  # as the daemon's cycle does
        runtime.events.append(event)
    assert [e.event_type for e in events] == ["ldap.sync_held"]
    assert events[0].details["groups"] == {"student": {"members": 2, "removing": 2, "share": 1.0}}
    assert cache(runtime)["bob"] == "student"  # nothing removed yet
    assert runtime.hooks.user_group(runtime, "dave") == "student"
    assert runtime.hooks.reconcile(runtime, []) == []  # same hold: not announced again
    assert read_pending(runtime.state.db) is not None

    held = invoke(root, runtime, "sync")
    assert held.exit_code == 0, held.output
    assert "bob   student  -   held\ndave  student  -   held\n" in held.output
    assert "held: student: would remove 2 of 2 members (100% > 50%)" in held.output
    assert "apply them with: ds01 admin ldap sync --confirm" in held.output
    preview = json.loads(invoke(root, runtime, "sync", "--dry-run", "--confirm", "--json").stdout)
    assert preview["leaves"] == {"student": ["bob", "dave"]} and preview["held_groups"] == {}
    assert cache(runtime)["bob"] == "student"

    confirmed = invoke(root, runtime, "sync", "--confirm")
    assert confirmed.exit_code == 0, confirmed.output
    assert "leave student: bob, dave" in confirmed.output
    assert cache(runtime) == {"alice": "researcher", "carol": "researcher"}
    assert read_pending(runtime.state.db) is None
    assert logged(runtime, "group.member_removed") == [
        ("group.member_removed", "bob", "student"),
        ("group.member_removed", "dave", "student"),
    ]
    sync_events = EventLog(runtime.config.paths.event_log_path).query(type_prefix="ldap.sync")
    assert [r["event_type"] for r in sync_events] == ["ldap.sync", "ldap.sync_held", "ldap.sync"]
    assert sync_events[-1]["details"]["confirmed"] is True


def test_unreachable_directory_fails_the_command_and_keeps_membership(
    root: click.Group, slapd: Slapd, ldap_runtime: RuntimeFactory
) -> None:
    runtime = ldap_runtime(slapd)
    invoke(root, runtime, "sync")
    dead = f"ldap://127.0.0.1:{free_port()}"
    down = ldap_runtime(slapd, servers=[dead])
    result = invoke(root, down, "sync", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["applied"] is False and data["error"].startswith(
        f"no LDAP server reachable: {dead}: socket connection error"
    )
    assert "the last known membership stays in force" in result.stderr
    assert logged(down, "ldap.unreachable") == [("ldap.unreachable", None, None)]
    assert cache(down)["alice"] == "researcher"


def test_unconfigured_plugin_says_so(root: click.Group, tmp_config: Callable[..., Any]) -> None:
    result = CliRunner().invoke(root, ["--config", str(tmp_config()), "admin", "ldap", "sync"])
    assert result.exit_code == 2
    assert "plugins.ldap maps no groups or names no servers" in result.stderr
