"""Shared by the ``ds01 image`` tests: a server whose catalogue has a base that fails to
install, ``ds01`` on a real terminal (a pty) answering prompts, and cleaning up as root."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.plugins.projects.projects_fixture import CATALOGUE, ProjectsServer, projects_server

#: a catalogue base whose apt installs fail (the step is ``exit 3`` after naming the packages)
FAILING = {
    **CATALOGUE["busybox"],
    "description": "installs nothing: every apt step fails",
    "apt_install": "echo installing {packages} && exit 3",
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@contextmanager
def image_server(users: Sequence[str] = ("ds01ta", "ds01tb")) -> Iterator[ProjectsServer]:
    """The projects server with the ``failing`` base; every ``img-`` image, container and
    definition of ``users`` removed afterwards (as root, on the engine)."""
    extra = {
        "plugins": {"projects": {"catalogue": {"failing": FAILING}}},
        # two GPUs in one container: recreating it must ask for two again
        "limits": {"defaults": {"max_gpu_slots_per_container": 2}},
    }
    try:
        with projects_server(extra) as server:
            yield server
    finally:
        clean(users)


def clean(users: Sequence[str]) -> None:
    for user in users:
        names = _lines(
            ["docker", "ps", "-aq", "--filter", f"label=ds01.user={user}", "--filter", "name=img-"]
        )
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        refs = _lines(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"])
        mine = [r for r in refs if r.startswith(f"ds01/{user}/img-")]
        if mine:
            subprocess.run(["docker", "rmi", "-f", *mine], capture_output=True)
        for directory in Path(f"/home/{user}/.ds01/images").glob("img-*"):
            shutil.rmtree(directory, ignore_errors=True)
    dangling = _lines(
        ["docker", "images", "-q", "--filter", "dangling=true", "--filter", "label=ds01.image.name"]
    )
    for image in dangling:
        labels = _lines(
            ["docker", "inspect", "-f", '{{index .Config.Labels "ds01.image.name"}}', image]
        )
        if labels and labels[0].startswith("img-"):
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def _lines(cmd: list[str]) -> list[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return [line for line in done.stdout.split() if line]


def build_as(
    user: Any, cli_root: Path, server: ProjectsServer, directory: Path, spec: str
) -> subprocess.CompletedProcess[str]:
    """``build_image`` in ``user``'s own process (no ``ds01 image`` checks before it): write a definition from ``spec`` (Python for an ImageSpec) and build it, as ``user``."""
    script = (
        "import json,sys\n"
        f"sys.path.insert(0, {str(cli_root / 'site')!r})\n"
        "from pathlib import Path\n"
        "from ds01_core.transports.api_socket.client import ApiClient\n"
        "from ds01_core.api import ServiceError\n"
        "from ds01_projects.settings import OPERATIONS, Settings\n"
        "from ds01_projects.imagespec import ImageSpec, write_definition\n"
        "from ds01_projects.build import build_image\n"
        f"s = Settings.from_json(ApiClient({server.api_socket!r}).call(OPERATIONS[0], {{}}))\n"
        f"spec = {spec}\n"
        f"d = Path({str(directory)!r})\n"
        "write_definition(d, spec, s.catalogue.get(spec.base_key or ''))\n"
        "try:\n"
        "    r = build_image(s, d, spec)\n"
        "except ServiceError as e:\n"
        "    print(e.message, file=sys.stderr); sys.exit(3)\n"
        "print(json.dumps({'ref': r.ref, 'id': r.image_id, 'log': str(r.log_path)}))\n"
    )
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "/usr/bin/python3", "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=user.home,
    )


def image_id(ref: str) -> str:
    return _lines(["docker", "image", "inspect", "-f", "{{.Id}}", ref])[0]


def container_image(name: str) -> str:
    return _lines(["docker", "inspect", "-f", "{{.Image}}", name])[0]


def installed(ref: str, kind: str) -> list[str]:
    """What the image's ``kind`` installs wrote (the test base records it)."""
    done = subprocess.run(
        ["docker", "run", "--rm", ref, "cat", f"/ds01-installed/{kind}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.split()


def ds01_tty(
    user: Any,
    cli_root: Path,
    server: ProjectsServer,
    args: Sequence[str],
    answers: Sequence[tuple[str, str]],
    timeout: float = 240,
) -> tuple[int, str]:
    """``ds01 ARGS`` as ``user`` on a pseudo-terminal: each ``(prompt, answer)`` is typed when
    the prompt's text appears. Returns the exit code and what the terminal showed."""
    env = {
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": f"{cli_root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TERM": "xterm",
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "DS01_API_SOCKET": server.api_socket,
        "DOCKER_HOST": f"unix://{server.gateway_socket}",
    }
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            str(cli_root / "bin" / "ds01"),
            *args,
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=user.home,
        start_new_session=True,
    )
    os.close(slave)
    raw, seen, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                raw += chunk
            text = _ANSI.sub("", raw.decode(errors="replace"))
            if pending and pending[0][0] in text[seen:]:
                seen = text.index(pending[0][0], seen) + len(pending[0][0])
                os.write(master, (pending.pop(0)[1] + "\n").encode())
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, _ANSI.sub("", raw.decode(errors="replace"))
