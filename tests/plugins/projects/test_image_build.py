"""``build_image`` in a real user's own process through the real gateway: the image lands in
the user's namespace with ds01's labels, the log is kept, and a failing step is named."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.image_helpers import build_as as _build_as
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration

NAME = "img-buildapi"


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running
    for ref in (f"ds01/ds01ta/{NAME}{x}:latest" for x in ("", "-bad", "-ctx")):
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def test_a_build_lands_in_the_users_namespace_with_its_labels(
    server: ProjectsServer, unix_users: Any, user_cli: Path, docker_engine: Any
) -> None:
    ta = unix_users["ds01ta"]
    directory = Path(ta.home) / ".ds01" / "images" / NAME
    spec = (
        f"ImageSpec(name={NAME!r}, base='ds01-test:busybox', base_key='busybox', "
        "pip=['numpy', 'scipy>=1'])"
    )
    done = _build_as(ta, user_cli, server, directory, spec)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ref"] == f"ds01/ds01ta/{NAME}:latest"
    attrs = docker_engine.api.inspect_image(result["ref"])
    assert attrs["Id"] == result["id"]
    labels = attrs["Config"]["Labels"] or {}
    assert labels["ds01.owner"] == "ds01ta"  # the gateway's
    assert labels["ds01.image.name"] == NAME  # ds01 image's record of what it built
    assert labels["ds01.image.base"] == "ds01-test:busybox"
    assert labels["ds01.image.definition"] == str(directory)
    log = Path(result["log"])
    assert log == directory / ".ds01" / "build.log"
    assert "Step 2/" in log.read_text() and "numpy" in log.read_text()
    assert log.stat().st_uid == ta.uid
    built = json.loads((directory / ".ds01" / "built.json").read_text())
    assert built["id"] == result["id"]
    out = subprocess.run(
        ["docker", "run", "--rm", result["ref"], "cat", "/ds01-installed/pip"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split() == ["numpy", "scipy>=1"], out.stderr


def test_a_failing_step_is_named_and_the_log_kept(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    directory = Path(ta.home) / ".ds01" / "images" / f"{NAME}-bad"
    spec = (
        f"ImageSpec(name={NAME + '-bad'!r}, base='ds01-test:busybox', base_key=None, "
        "pip=['numpy'])"  # not in the catalogue: the default 'pip install', which busybox lacks
    )
    done = _build_as(ta, user_cli, server, directory, spec)
    assert done.returncode == 3, done.stdout
    assert "failed at Step 2/" in done.stderr and "pip install" in done.stderr
    assert f"{directory}/.ds01/build.log" in done.stderr
    assert "pip: not found" in (directory / ".ds01" / "build.log").read_text()


def test_the_context_honours_dockerignore_but_always_sends_the_dockerfile(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    from ds01_projects.imagespec import USER_MARKER

    ta = unix_users["ds01ta"]
    directory = Path(ta.home) / ".ds01" / "images" / f"{NAME}-ctx"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".dockerignore").write_text("*\n!keep.txt\n")
    (directory / "keep.txt").write_text("kept\n")
    (directory / "secret.txt").write_text("not for the builder\n")
    (directory / "Dockerfile").write_text(f"{USER_MARKER}\nCOPY . /ctx/\n")
    subprocess.run(["chown", "-R", f"{ta.uid}:{ta.gid}", str(directory.parent)], check=True)
    spec = f"ImageSpec(name={NAME + '-ctx'!r}, base='ds01-test:busybox', base_key='busybox')"
    done = _build_as(ta, user_cli, server, directory, spec)
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(
        ["docker", "run", "--rm", f"ds01/ds01ta/{NAME}-ctx:latest", "ls", "-a", "/ctx"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = set(listing.stdout.split()) - {".", ".."}
    assert names == {"keep.txt"}, listing.stderr  # the build ran: the Dockerfile was sent
