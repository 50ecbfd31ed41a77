"""Shared by the project tests: running ``ds01`` as a user, reading files, cleaning up."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers.gateway import docker
from tests.plugins.projects.projects_fixture import ProjectsServer, ds01_as


def run(user: Any, cli: Path, server: ProjectsServer, *args: str, **kw: Any) -> Any:
    return ds01_as(user, cli, server, *args, **kw)


def run_in(user: Any, cli: Path, server: ProjectsServer, cwd: Path, *args: str) -> Any:
    """``ds01 ARGS`` as ``user`` in the folder ``cwd`` (``ds01_as`` runs in the home)."""
    env = {
        "HOME": user.home,
        "USER": user.name,
        "PATH": f"{cli / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "DS01_API_SOCKET": server.api_socket,
    }
    return subprocess.run(
        [
            *("runuser", "-u", user.name, "--", "env", "-i"),
            *(f"{k}={v}" for k, v in env.items()),
            str(cli / "bin" / "ds01"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def ok_json(user: Any, cli: Path, server: ProjectsServer, *args: str, **kw: Any) -> Any:
    done = ds01_as(user, cli, server, *args, "--json", **kw)
    assert done.returncode == 0, f"ds01 {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def one_line_error(done: Any, code: int) -> str:
    """A refusal: the exit code, one ``Error:`` line on stderr, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr and "bug in ds01" not in done.stderr
    return str(lines[0])


def inspect(user: Any, server: ProjectsServer, name: str) -> dict[str, Any]:
    done = docker(user, server.gateway_socket, "inspect", name)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)[0])


def clean_up(engine: Any, users: list[Any], prefix: str = "prj-") -> None:
    """Remove the tests' containers, images and project folders (as root, on the engine)."""
    api = engine.api
    for container in api.containers(all=True):
        names = [n.lstrip("/") for n in container.get("Names") or []]
        labels = container.get("Labels") or {}
        mine = any(
            n.startswith(prefix) or any(n.startswith(f"{u.name}-{prefix}") for u in users)
            for n in names
        )
        folder = labels.get("devcontainer.local_folder", "").split("/")[-1]
        if mine or labels.get("ds01.project", "").startswith(prefix) or folder.startswith(prefix):
            api.remove_container(container["Id"], force=True)
    for image in api.images():
        for tag in image.get("RepoTags") or []:
            if f"/{prefix}" in tag or tag.startswith(f"vsc-{prefix}"):
                with contextlib.suppress(Exception):  # best effort: the next tag may still go
                    api.remove_image(tag, force=True)
    for user in users:
        root = Path(user.home) / "projects"
        if root.is_dir():
            for folder in root.glob(f"{prefix}*"):
                shutil.rmtree(folder, ignore_errors=True)
