"""``ds01 usage`` run by real non-root users through a real ``ds01-api``: a plain user sees only
their own rows and is refused (exit 2, one line, no traceback) for another user, a group or
everyone; a member of the admin group sees everyone's."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_accounting.recorder import record_cycle
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.accounting.accounting_helpers import (
    Clock,
    allocate,
    make_runtime,
    release,
    report,
)

WINDOW = ("--since", "2025-03-03", "--until", "2025-03-04")


@pytest.fixture
def served(unix_users: Any) -> Iterator[str]:
    """The API socket of a ds01-api over records of ds01ta (120 s of GPU 0) and ds01tb (60 s
    of a 3g slice), in a directory other users can reach."""
    directory = Path(tempfile.mkdtemp(prefix="ds01-acct-"))
    directory.chmod(0o755)
    try:
        clock = Clock()
        runtime, _gpus = make_runtime(directory, clock)
        a = allocate(runtime, "ds01ta", "a", "0")
        b = allocate(runtime, "ds01tb", "b", "1.2")
        for step in range(4):
            clock.advance(30)
            if step == 1:
                release(runtime, b)
            record_cycle(runtime, report(runtime))
        release(runtime, a)
        record_cycle(runtime, report(runtime))
        runtime.close()
        with running_api(directory / "ds01.yaml") as sock:
            yield sock
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ds01(user: Any, cli_root: Path, sock: str, *args: str) -> Any:
    return run_as(user, cli_root, args, env={"DS01_API_SOCKET": sock})


def test_a_user_sees_only_their_own_rows(served: str, user_cli: Path, unix_users: Any) -> None:
    ta = unix_users["ds01ta"]
    mine = ds01(ta, user_cli, served, "usage", *WINDOW, "--json")
    assert mine.returncode == 0, mine.stderr
    data = json.loads(mine.stdout)
    assert data["scope"] == "user ds01ta"
    assert [(r["key"], r["gpu_eq_seconds"]) for r in data["rows"]] == [("ds01ta", 120.0)]
    assert data["total"]["gpu_eq_seconds"] == 120.0
    table = ds01(ta, user_cli, served, "usage", *WINDOW)
    assert table.returncode == 0 and "ds01tb" not in table.stdout

    for args, words in (
        (("--user", "ds01tb"), "another user's usage"),
        (("--all",), "everyone's usage"),
        (("--group", "staff"), "group staff's usage"),
    ):
        refused = ds01(ta, user_cli, served, "usage", *args, *WINDOW)
        assert refused.returncode == 2, refused
        assert refused.stderr.startswith(f"Error: only admins may see {words}; you are ds01ta")
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert refused.stdout == ""


def test_an_admin_group_member_sees_everyone(
    served: str, user_cli: Path, admin_member: Any
) -> None:
    result = ds01(admin_member, user_cli, served, "usage", "--all", *WINDOW, "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["key"]: r["gpu_eq_seconds"] for r in json.loads(result.stdout)["rows"]}
    assert rows == pytest.approx({"ds01ta": 120.0, "ds01tb": 3 / 7 * 60}, abs=1e-3)  # ms in JSON
    other = ds01(admin_member, user_cli, served, "usage", "--user", "ds01tb", *WINDOW, "--json")
    assert [r["key"] for r in json.loads(other.stdout)["rows"]] == ["ds01tb"]
