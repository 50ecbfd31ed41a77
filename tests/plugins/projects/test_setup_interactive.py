"""``ds01 setup`` on a terminal, as a real user answers it: the prompts come (rich), and the
answers decide what changes."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


class Terminal:
    """A command on a pseudo-terminal: wait for text, type answers."""

    def __init__(self, argv: list[str]):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._read(0.2)):
                raise AssertionError(f"{text!r} did not come; the terminal shows:\n{self.seen}")
            self._read(min(left, 0.5))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.seen += data.decode(errors="replace")
        return bool(data)

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.1):
            pass
        os.close(self.master)
        return self.proc.wait(timeout=5)


def test_the_answers_decide(server: ProjectsServer, unix_users: Any, user_cli: Path) -> None:
    tb = unix_users["ds01tb"]
    home = Path(tempfile.mkdtemp(prefix="setup-tty-"))
    os.chown(home, tb.uid, tb.gid)
    home.chmod(0o755)
    env = {
        "HOME": str(home),
        "USER": tb.name,
        "PATH": f"{user_cli / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "COLUMNS": "200",
        "DS01_API_SOCKET": server.api_socket,
    }
    argv = ["runuser", "-u", tb.name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items())]
    try:
        term = Terminal([*argv, str(user_cli / "bin" / "ds01"), "setup"])
        term.expect("Point Docker at the ds01 gateway in ~/.profile, ~/.bashrc?")
        term.send("n")
        term.expect("Create your first project now?")
        term.send("n")
        assert term.finish() == 0, term.seen
        assert "no project yet" in term.seen and "DOCKER_HOST is not set" in term.seen
        assert not (home / ".profile").exists()  # said no: nothing written
        assert (home / ".ds01" / "setup.json").exists()
        # a second run asks nothing it was not asked to (it only reports)
        again = Terminal([*argv, str(user_cli / "bin" / "ds01"), "setup"])
        assert again.finish() == 0, again.seen
        assert "Checking your setup again" in again.seen
        assert "Point Docker" not in again.seen and "first project now" not in again.seen
        assert "DOCKER_HOST is not set" in again.seen and "ds01 setup --docker-host" in again.seen
    finally:
        shutil.rmtree(home, ignore_errors=True)
