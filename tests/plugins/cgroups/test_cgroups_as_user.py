"""``ds01 admin cgroups check`` run by real non-root users through a real ``ds01-api`` (on a
fake cgroup v1 tree): a plain user is refused (exit 2, one line, no traceback), a member of
the admin group gets the report as themselves."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as


@pytest.fixture
def cli_root(user_cli: Path) -> Path:
    """The session's ``ds01`` any user can run (tests/conftest.py)."""
    return user_cli


@pytest.fixture
def sock(
    tmp_config: Callable[..., Path], tmp_path: Path, v1_root: Path, cli_root: Path, unix_users: Any
) -> Iterator[str]:
    """A ds01-api whose cgroups plugin works on the fake v1 tree, ds01ta with limits."""
    tmp_path.chmod(0o755)
    config = tmp_config(
        {
            "limits": {"users": {"ds01ta": {"memory_max": "1g", "tasks_max": 100}}},
            "plugins": {
                "cgroups": {"cgroup_fs": str(v1_root), "driver": "cgroupfs", "version": "v1"}
            },
        }
    )
    with running_api(config) as path:
        yield path


def ds01(user: Any, cli_root: Path, sock: str, *args: str) -> Any:
    return run_as(user, cli_root, ["admin", "cgroups", *args], env={"DS01_API_SOCKET": sock})


def test_a_plain_user_is_refused(sock: str, cli_root: Path, unix_users: Any) -> None:
    for args in (("check",), ("check", "--user", "ds01ta", "--json")):
        result = ds01(unix_users["ds01ta"], cli_root, sock, *args)
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr == (
            "Error: this is an admin operation; ds01ta is not in the admin group (ds01-admin)\n"
        )


def test_an_admin_group_member_gets_the_report(
    sock: str, cli_root: Path, admin_member: Any, v1_root: Path
) -> None:
    tb = admin_member  # ds01tc, in the admin group (tests/conftest.py)
    as_json = ds01(tb, cli_root, sock, "check", "--user", "ds01ta", "--json")
    table = ds01(tb, cli_root, sock, "check", "--user", "ds01ta")
    assert as_json.returncode == 1, as_json.stderr  # ds01ta's cgroup does not exist yet
    [report] = json.loads(as_json.stdout)
    assert (report["user"], report["cgroup"], report["ok"]) == (
        "ds01ta",
        "/ds01/default/ds01ta",
        False,
    )
    assert report["mismatches"] == [
        {
            "file": f"{v1_root}/*/ds01/default/ds01ta",
            "device": None,
            "expected": "a cgroup directory",
            "actual": None,
        }
    ]
    assert table.returncode == 1, table.stderr
    assert "ds01ta" in table.stdout
    assert "expected 'a cgroup directory', found missing" in table.stdout
