"""``ds01 admin ldap sync|show`` run by real non-root users through a real ``ds01-api``: a
plain user is refused (exit 2, one line, no traceback), a member of the admin group syncs and
explains as themselves."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import load_runtime
from ds01_ldap.store import read_memberships
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.ldap.conftest import LIMIT_GROUPS
from tests.plugins.ldap.slapd import Slapd


@pytest.fixture
def cli_root(user_cli: Path) -> Path:
    """The session's ``ds01`` any user can run (tests/conftest.py)."""
    return user_cli


@pytest.fixture
def served(
    slapd: Slapd,
    tmp_config: Callable[..., Path],
    ldap_section: Callable[..., dict[str, Any]],
    tmp_path: Path,
    cli_root: Path,
    unix_users: Any,
) -> Iterator[tuple[Path, str]]:
    """(the configuration, the API socket) of a ds01-api mapping the test directory."""
    tmp_path.chmod(0o755)
    config = tmp_config(
        {"limits": {"groups": LIMIT_GROUPS}, "plugins": {"ldap": ldap_section(slapd)}}
    )
    with running_api(config) as sock:
        yield config, sock


def ds01(user: Any, cli_root: Path, sock: str, *args: str) -> Any:
    return run_as(user, cli_root, ["admin", "ldap", *args], env={"DS01_API_SOCKET": sock})


@pytest.mark.parametrize(
    "args", [("sync",), ("sync", "--dry-run"), ("show", "alice"), ("show", "ds01ta")]
)
def test_a_plain_user_is_refused(
    served: tuple[Path, str], cli_root: Path, unix_users: Any, args: tuple[str, ...]
) -> None:
    config, sock = served
    result = ds01(unix_users["ds01ta"], cli_root, sock, *args)
    assert result.returncode == 2, result
    assert result.stderr == (
        "Error: this is an admin operation; ds01ta is not in the admin group (ds01-admin)\n"
    )
    assert "Traceback" not in result.stdout + result.stderr
    runtime = load_runtime(str(config))
    try:
        records = EventLog(runtime.config.paths.event_log_path).query()
    finally:
        runtime.close()
    assert [(r["event_type"], r["user"]) for r in records if r["source"] != "api"] == []
    [denied] = [r for r in records if r["event_type"] == "access.denied"]
    assert denied["user"] == "ds01ta"  # refused and logged; nothing synced


def test_an_admin_group_member_syncs_and_explains(
    served: tuple[Path, str], cli_root: Path, admin_member: Any, slapd: Slapd
) -> None:
    config, sock = served
    tb = admin_member  # ds01tc, in the admin group (tests/conftest.py)
    synced = ds01(tb, cli_root, sock, "sync", "--json")
    shown = ds01(tb, cli_root, sock, "show", "Alice@EXAMPLE.ORG")
    assert synced.returncode == 0, synced.stderr
    data = json.loads(synced.stdout)
    assert data["applied"] is True and data["server"] == slapd.uri
    assert data["joins"] == {"researcher": ["alice", "carol"], "student": ["bob", "dave"]}
    assert "Warning: plugins.ldap binds as cn=reader" in synced.stderr  # the advice still shows
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[:2] == ["user:        alice", "ds01 group:  researcher"]
    runtime = load_runtime(str(config))
    try:
        assert {u: m.group for u, m in read_memberships(runtime.state.db).items()} == {
            "alice": "researcher",
            "bob": "student",
            "carol": "researcher",
            "dave": "student",
        }
        [record] = EventLog(runtime.config.paths.event_log_path).query(type_prefix="ldap.sync")
        assert record["details"]["by"] == "ds01tc"
    finally:
        runtime.close()
