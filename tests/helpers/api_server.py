"""A real ``ds01-api`` for tests that run ``ds01`` as real users, and a real admin-group member.

The server runs as root (like the systemd unit), from the world-readable copy of ds01 that
:func:`tests.helpers.user_cli.build_user_cli` makes, on a socket in a directory every user can
reach; users' commands find it through ``DS01_API_SOCKET``.
"""

from __future__ import annotations

import contextlib
import grp
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ADMIN_GROUP = "ds01-admin"  # gateway.admin_group's default


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@contextlib.contextmanager
def api_server(cli_root: Path, config: Path, *, timeout: float = 30.0) -> Iterator[str]:
    """``ds01-api --config CONFIG`` as root until the block ends; yields the socket's path."""
    directory = Path(tempfile.mkdtemp(prefix="ds01-api-"))
    directory.chmod(0o755)
    sock = directory / "api.sock"
    log = directory / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(cli_root / "bin" / "ds01-api"), "--config", str(config), "--socket", str(sock)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ds01-api did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.05)
        yield str(sock)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def admin_member(user: str, group: str = ADMIN_GROUP) -> Iterator[None]:
    """``user`` in the admin group for the block: the group is created if missing (and then
    removed), the membership always removed."""
    try:
        grp.getgrnam(group)
        created = False
    except KeyError:
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        created = True
    subprocess.run(["gpasswd", "-a", user, group], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["gpasswd", "-d", user, group], capture_output=True)
        if created:
            subprocess.run(["groupdel", group], capture_output=True)
