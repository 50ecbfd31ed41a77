"""``ds01 image update|rebuild`` as a real user: a changed definition is offered a rebuild
(``--yes`` and on a terminal), the new build has the package, and the container made on the
old build is made again on the new one (same name, GPU request, command, running again); a
Dockerfile edited by hand is noticed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.gateway import docker
from tests.plugins.projects.image_helpers import (
    container_image,
    ds01_tty,
    image_id,
    image_server,
    installed,
)
from tests.plugins.projects.projects_fixture import ProjectsServer, ds01_as

pytestmark = pytest.mark.integration

NAME, BOX, PLAIN = "img-upd", "img-upd-box", "img-upd-plain"
REF = f"ds01/ds01ta/{NAME}:latest"


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with image_server(("ds01ta",)) as running:
        yield running


@pytest.fixture(scope="module")
def box(server: ProjectsServer, unix_users: Any, user_cli: Path) -> str:
    """ds01ta's image img-upd and a running container on it with one GPU; its image id."""
    ta = unix_users["ds01ta"]
    made = ds01_as(ta, user_cli, server, "image", "create", NAME, "--pip", "numpy", "--yes")
    assert made.returncode == 0, made.stderr
    workspace = Path(ta.home) / "img-upd-ws"
    subprocess.run(["runuser", "-u", ta.name, "--", "mkdir", "-p", str(workspace)], check=True)
    created = ds01_as(
        ta, user_cli, server, "container", "create", BOX, "--image", REF, "--gpus", "2",
        "--workspace", str(workspace), "--project", "img-proj", "--", "sleep", "3600",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    started = ds01_as(ta, user_cli, server, "container", "start", BOX)
    assert started.returncode == 0, started.stderr
    return image_id(REF)


def _inspect(name: str) -> dict[str, Any]:
    done = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, timeout=30)
    return dict(json.loads(done.stdout)[0])


def test_update_with_yes_rebuilds_and_moves_the_container(
    box: str, server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    before = _inspect(BOX)
    plain = docker(ta, server.gateway_socket, "run", "-d", "--name", PLAIN, REF, "sleep", "600")
    assert plain.returncode == 0, plain.stderr
    done = ds01_as(
        ta, user_cli, server, "image", "update", NAME, "--add-pip", "scipy", "--yes", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert f"{PLAIN} was not made by ds01" in done.stderr  # listed, not recreated
    assert container_image(PLAIN) == box
    subprocess.run(["docker", "rm", "-f", PLAIN], capture_output=True, timeout=60)
    data = json.loads(done.stdout)
    assert data["changes"] == ["+ pip scipy"]
    new = data["built"]["id"]
    assert new != box and new == image_id(REF)
    assert installed(REF, "pip") == ["numpy", "scipy"]
    assert data["recreated"] == [BOX] and data["old_removed"] is False  # PLAIN used it
    after = _inspect(BOX)
    assert after["Image"] == new and after["Id"] != before["Id"]
    assert after["State"]["Running"] is True
    assert after["Config"]["Cmd"] == ["sleep", "3600"]
    labels, old_labels = after["Config"]["Labels"], before["Config"]["Labels"]
    assert len(labels["ds01.gpu.uuids"].split(",")) == 2  # the request kept
    assert json.loads(labels["ds01.gpu.request"])["count"] == 2  # as admission recorded it
    assert labels["ds01.origin"] == old_labels["ds01.origin"] == "ds01"
    assert labels["ds01.workspace"] == old_labels["ds01.workspace"] == f"{ta.home}/img-upd-ws"
    assert labels["ds01.project"] == "img-proj"
    dockerfile = Path(f"{ta.home}/.ds01/images/{NAME}/Dockerfile").read_text()
    assert "echo numpy scipy >> /ds01-installed/pip" in dockerfile


def test_update_on_a_terminal_asks_and_an_old_build_in_use_is_listed(
    box: str, server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    old = image_id(REF)
    code, screen = ds01_tty(
        ta,
        user_cli,
        server,
        ["image", "update", NAME, "--add-apt", "curl"],
        [("Rebuild it now?", "y"), ("still uses the old build", "n")],
    )
    assert code == 0, screen
    new = image_id(REF)
    assert new != old and installed(REF, "apt") == ["curl"]
    assert container_image(BOX) == old  # not moved: the user said no
    rows = json.loads(ds01_as(ta, user_cli, server, "image", "list", "--json").stdout)
    stale = [r for r in rows if r["name"] == NAME and r["old"]]
    assert [(r["id"], r["tag"], r["containers"]) for r in stale] == [(old, "(old)", [BOX])]
    moved = ds01_as(ta, user_cli, server, "image", "update", NAME, "--recreate")
    assert moved.returncode == 0, moved.stderr
    assert "is up to date" in moved.stdout and f"recreated {BOX}" in moved.stdout
    assert container_image(BOX) == new


def test_a_dockerfile_edited_by_hand_is_offered_a_rebuild_and_kept(
    box: str, server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    path = Path(f"{ta.home}/.ds01/images/{NAME}/Dockerfile")
    path.write_text(path.read_text() + "RUN echo by-hand > /hand-made\n")
    held = ds01_as(ta, user_cli, server, "image", "update", NAME, "--no-rebuild")
    assert held.returncode == 0, held.stderr
    assert "Dockerfile changed since ds01/ds01ta/img-upd:latest was built" in held.stdout
    assert f"ds01 image rebuild {NAME}" in held.stdout
    done = ds01_as(ta, user_cli, server, "image", "update", NAME, "--add-pip", "pandas", "--yes")
    assert done.returncode == 0, done.stderr
    out = subprocess.run(
        ["docker", "run", "--rm", REF, "cat", "/hand-made"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "by-hand"  # the user's own step survived the re-render
    assert "pandas" in installed(REF, "pip")
    again = ds01_as(ta, user_cli, server, "image", "update", NAME)
    assert again.returncode == 0 and "is up to date" in again.stdout


def test_rebuild_builds_again_and_a_missing_definition_is_one_line(
    box: str, server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    done = ds01_as(ta, user_cli, server, "image", "rebuild", NAME, "--no-cache", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Built ds01/ds01ta/img-upd:latest" in done.stdout, done.stdout + done.stderr
    assert container_image(BOX) == image_id(REF)  # --yes moved it to the new build
    missing = ds01_as(ta, user_cli, server, "image", "rebuild", "img-none")
    assert missing.returncode == 2
    assert "img-none/ds01-image.yaml does not exist" in missing.stderr
    absent = ds01_as(ta, user_cli, server, "image", "update", NAME, "--remove-pip", "torch")
    assert absent.returncode == 2 and "torch is not among the pip packages" in absent.stderr
