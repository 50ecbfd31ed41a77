"""The questions ``ds01 project init`` and ``ds01 container retire`` ask a person at a terminal
(a real pseudo-terminal, as a real user), and that the answers are what gets written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.gateway import docker, in_pty
from tests.plugins.projects.project_helpers import clean_up, run
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(
    unix_users: Any, docker_engine: Any, test_image: str, user_cli: Path
) -> Iterator[ProjectsServer]:
    users = [unix_users["ds01ta"]]
    clean_up(docker_engine, users, prefix="prj-pt")
    with projects_server() as running:
        yield running
    clean_up(docker_engine, users, prefix="prj-pt")


def _ds01(server: ProjectsServer, cli: Path, *args: str) -> list[str]:
    return [
        "env",
        f"DS01_API_SOCKET={server.api_socket}",
        f"PATH={cli / 'bin'}:/usr/bin:/bin",
        "COLUMNS=200",
        str(cli / "bin" / "ds01"),
        *args,
    ]


def test_init_asks_for_base_packages_and_gpus_on_a_terminal(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    output = in_pty(
        ta,
        server.gateway_socket,
        _ds01(server, user_cli, "project", "init", "prj-pt"),
        ["busybox", "numpy rich", "0", "y"],
        expect="Next: ds01 project launch",
        timeout=60,
    )
    assert "Base image" in output and "GPUs for the container" in output, output
    assert "Create the project in" in output, output
    folder = Path(ta.home) / "projects" / "prj-pt"
    spec = yaml.safe_load((folder / "ds01-image.yaml").read_text())
    assert spec["base"] == "ds01-test:busybox" and spec["pip"] == ["numpy", "rich"]
    project = yaml.safe_load((folder / "ds01-project.yaml").read_text())
    assert project["gpus"] == 0


def test_retire_asks_before_removing_and_no_keeps_it(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    created = run(
        ta,
        user_cli,
        server,
        *("container", "create", "prj-pt-box", "--image", "ds01-test:busybox", "--cpu-only"),
        *("sleep", "3600"),
    )
    assert created.returncode == 0, created.stderr
    output = in_pty(
        ta,
        server.gateway_socket,
        _ds01(server, user_cli, "container", "retire", "prj-pt-box"),
        ["n"],
        expect="was kept",
        timeout=60,
    )
    assert "Remove prj-pt-box?" in output and "prj-pt-box was kept" in output, output
    ps = docker(ta, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
    assert "prj-pt-box" in ps.stdout.split()
    output = in_pty(
        ta,
        server.gateway_socket,
        _ds01(server, user_cli, "container", "retire", "prj-pt-box"),
        ["y"],
        expect="removed prj-pt-box",
        timeout=60,
    )
    assert "removed prj-pt-box" in output, output
    ps = docker(ta, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
    assert "prj-pt-box" not in ps.stdout.split()
