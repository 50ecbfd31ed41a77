"""Fixtures for integration tests: real Unix users with real home directories."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator

import attrs
import pytest

TEST_USERS = ("ds01ta", "ds01tb")


@attrs.frozen
class UnixUser:
    name: str
    uid: int
    gid: int
    home: str


@pytest.fixture(scope="session")
def unix_users() -> Iterator[dict[str, UnixUser]]:
    """Two real users (``ds01ta``, ``ds01tb``) with homes under /home, created for the run and
    removed afterwards. Needs root (CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("integration tests need root to create test users")
        pytest.skip("needs root to create test users")
    created = []
    users = {}
    for name in TEST_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/sh", name],
                check=True,
                capture_output=True,
            )
            created.append(name)
            entry = pwd.getpwnam(name)
        os.makedirs(entry.pw_dir, exist_ok=True)
        os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
        users[name] = UnixUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    yield users
    for name in created:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(f"/home/{name}", ignore_errors=True)
