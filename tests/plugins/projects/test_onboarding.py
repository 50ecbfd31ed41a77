"""The timed onboarding (issue 17), once: a fresh home, ``ds01 setup --non-interactive
--no-project``, ``ds01 project init``, ``ds01 project launch`` and the user's own ``docker
exec`` (DOCKER_HOST from the ~/.profile setup wrote) as a real user through ds01-api and the
gateway; the container runs with a GPU and the workspace mounted, in under a minute of machine
time. ``python -m benchmarks onboarding`` times the same path for a brand-new account."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_onboarding import clean_up, onboard
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


def test_from_a_fresh_home_to_a_gpu_container(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    tb = unix_users["ds01tb"]
    home = Path(tempfile.mkdtemp(prefix="setup-onboard-"))
    os.chown(home, tb.uid, tb.gid)
    home.chmod(0o755)
    project = f"setup-onb-{os.getpid()}"
    folder = Path(tb.home) / "projects" / project
    try:
        run = onboard(tb, user_cli, server, project, home=str(home))
        for step in run.steps:
            assert step.returncode == 0, f"{step.command}:\n{step.output}"
            assert "Traceback" not in step.output
        assert [s.command.split()[:3] for s in run.steps] == [
            ["ds01", "setup", "--non-interactive"],
            ["ds01", "project", "init"],
            ["ds01", "project", "launch"],
            ["docker", "exec", f"ds01tb-{project}"],
        ]
        # the workspace is mounted: the container lists the project's files
        assert {"Dockerfile", "ds01-project.yaml", "README.md"} <= set(run.steps[-1].output.split())
        assert run.container["status"] == "running"
        assert len(run.container["gpu_slots"]) == 1
        (mount,) = [m for m in run.mounts if m.get("Destination") == "/workspace"]
        assert mount["Source"] == str(folder) and mount["RW"] is True
        assert (
            f"export DOCKER_HOST=unix://{server.gateway_socket}" in (home / ".profile").read_text()
        )
        assert run.machine_seconds < 60, run.summary()
        print(run.summary())  # the figures, with -s
    finally:
        clean_up(tb.name, project, f"{tb.home}/projects")
        shutil.rmtree(home, ignore_errors=True)
