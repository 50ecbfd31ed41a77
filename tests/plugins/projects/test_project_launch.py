"""``ds01 project init|launch|list`` as real users through ds01-api and the gateway: the files,
the image built from the project's definition, the container with the workspace at /workspace
and a GPU allocated, and another user kept out."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.gateway import docker
from tests.plugins.projects.project_helpers import (
    clean_up,
    inspect,
    ok_json,
    one_line_error,
    run,
    run_in,
)
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(
    unix_users: Any, docker_engine: Any, test_image: str, user_cli: Path
) -> Iterator[ProjectsServer]:
    users = [unix_users["ds01ta"], unix_users["ds01tb"]]
    clean_up(docker_engine, users)
    with projects_server() as running:
        yield running
    clean_up(docker_engine, users)


def test_init_writes_a_project_the_user_owns(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    data = ok_json(ta, user_cli, server, "project", "init", "prj-a", "--pip", "numpy", "--yes")
    folder = Path(ta.home) / "projects" / "prj-a"
    assert data["directory"] == str(folder) and data["new"] is True
    assert data["container"] == "ds01ta-prj-a"
    info = folder.stat()
    assert (info.st_uid, info.st_gid) == (ta.uid, ta.gid)
    assert stat.S_IMODE(info.st_mode) == 0o700
    for name in (
        "ds01-project.yaml",
        "ds01-image.yaml",
        "Dockerfile",
        ".devcontainer/devcontainer.json",
        ".gitignore",
        "README.md",
    ):
        assert (folder / name).stat().st_uid == ta.uid, name
    project = yaml.safe_load((folder / "ds01-project.yaml").read_text())
    assert project == {"name": "prj-a", "image": "prj-a", "gpus": 1, "container": "ds01ta-prj-a"}
    spec = yaml.safe_load((folder / "ds01-image.yaml").read_text())
    assert spec["base"] == "ds01-test:busybox" and spec["pip"] == ["numpy"]
    assert "FROM ds01-test:busybox" in (folder / "Dockerfile").read_text()
    dev = json.loads((folder / ".devcontainer" / "devcontainer.json").read_text())
    assert dev["build"] == {"dockerfile": "../Dockerfile", "context": ".."}
    assert dev["runArgs"] == ["--gpus", "1"]
    assert dev["containerUser"] == f"{ta.uid}:{ta.gid}"
    assert dev["workspaceFolder"] == "/workspace"
    ignored = (folder / ".gitignore").read_text().splitlines()
    assert {".ds01/", "__pycache__/", ".ipynb_checkpoints/", "data/", "checkpoints/"} <= set(
        ignored
    )
    assert "ds01 project launch prj-a" in (folder / "README.md").read_text()


def test_init_again_keeps_what_the_user_changed(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    folder = Path(ta.home) / "projects" / "prj-a"
    readme = folder / "README.md"
    readme.write_text(readme.read_text() + "\nMy notes.\n")
    done = run(ta, user_cli, server, "project", "init", "prj-a", "--yes")
    assert done.returncode == 0, done.stderr
    assert "kept       README.md  (you changed it" in done.stdout
    assert "unchanged  .gitignore" in done.stdout
    assert readme.read_text().endswith("My notes.\n")
    spec = yaml.safe_load((folder / "ds01-image.yaml").read_text())
    assert spec["pip"] == ["numpy"]  # the definition is the user's: a re-run leaves it


def test_init_refuses_a_folder_with_other_things_in_it(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    folder = Path(ta.home) / "projects" / "prj-busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    os.chown(folder, ta.uid, ta.gid)
    os.chown(folder / "notes.txt", ta.uid, ta.gid)
    done = run(ta, user_cli, server, "project", "init", "prj-busy", "--yes")
    assert "is not empty" in one_line_error(done, 1)
    assert not (folder / "ds01-project.yaml").exists()
    done = run(ta, user_cli, server, "project", "init", "prj-busy", "--force", "--yes")
    assert done.returncode == 0, done.stderr
    assert (folder / "ds01-project.yaml").is_file()
    assert (folder / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    "args, says",
    [
        (("project", "init", "Bad Name"), "invalid project name"),
        (("project", "init", "prj-x", "--gpus", "1", "--cpu-only"), "choose one of"),
        (("project", "init", "prj-x", "--mig", "big"), "invalid MIG profile"),
        (("project", "init", "prj-x", "--base", "nosuchbase"), "no base 'nosuchbase'"),
        (("project", "launch"), "is not inside a ds01 project"),
        (("project", "init", "prj-x", "--image", "x:1", "--pip", "y"), "--image uses"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    server: ProjectsServer, unix_users: Any, user_cli: Path, args: tuple[str, ...], says: str
) -> None:
    ta = unix_users["ds01ta"]
    done = run(ta, user_cli, server, *args, "--yes")
    assert says in one_line_error(done, 2)
    assert not (Path(ta.home) / "projects" / "prj-x").exists()


def test_launch_builds_and_starts_the_container_with_workspace_and_gpu(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    folder = Path(ta.home) / "projects" / "prj-a"
    data = ok_json(ta, user_cli, server, "project", "launch", "prj-a")
    assert data["action"] == "created" and data["built"] is True
    assert data["image"] == "ds01/ds01ta/prj-a:latest"
    assert data["gpu_slots"], data
    # the workspace: a file the user writes in the folder is at /workspace inside
    (folder / "hello.txt").write_text("from the host\n")
    os.chown(folder / "hello.txt", ta.uid, ta.gid)
    done = docker(ta, server.gateway_socket, "exec", "ds01ta-prj-a", "cat", "/workspace/hello.txt")
    assert done.stdout == "from the host\n", done.stderr
    # the image was built from the project's definition (the test base records pip installs)
    done = docker(ta, server.gateway_socket, "exec", "ds01ta-prj-a", "cat", "/ds01-installed/pip")
    assert done.stdout.split() == ["numpy"], done.stderr
    # the GPU: allocated by the core, in the listing, the labels and the environment
    details = inspect(ta, server, "ds01ta-prj-a")
    labels = details["Config"]["Labels"]
    assert labels["ds01.gpu.slots"].split(",") == data["gpu_slots"]
    listed = ok_json(ta, user_cli, server, "container", "list")
    row = next(c for c in listed if c["name"] == "ds01ta-prj-a")
    assert row["gpu_slots"] == labels["ds01.gpu.uuids"].split(",")
    assert labels["ds01.project"] == "prj-a" and labels["ds01.workspace"] == str(folder)
    env = dict(e.split("=", 1) for e in details["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == labels["ds01.gpu.uuids"] != "void"
    # again: already running, nothing built
    again = ok_json(ta, user_cli, server, "project", "launch", "prj-a")
    assert again["action"] == "running" and again["built"] is False


def test_launch_from_inside_the_folder_starts_a_stopped_container(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    stopped = docker(ta, server.gateway_socket, "stop", "-t", "0", "ds01ta-prj-a")
    assert stopped.returncode == 0, stopped.stderr
    folder = Path(ta.home) / "projects" / "prj-a" / ".devcontainer"
    done = run_in(ta, user_cli, server, folder, "project", "launch", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "started"
    assert inspect(ta, server, "ds01ta-prj-a")["State"]["Running"] is True


def test_a_definition_changed_since_the_build_is_built_again(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    folder = Path(ta.home) / "projects" / "prj-a"
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo changed > /changed\n")
    data = ok_json(ta, user_cli, server, "project", "launch", "prj-a")
    assert data["built"] is True and data["action"] == "running"
    assert data["stale_image"] is True  # the container still runs the older build


def test_another_user_cannot_launch_it_or_see_it(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta, tb = unix_users["ds01ta"], unix_users["ds01tb"]
    ok_json(ta, user_cli, server, "project", "init", "prj-img", "--image", "ds01-test:busybox")
    folder = Path(ta.home) / "projects" / "prj-img"
    # readable by everyone, so that only the service's workspace check stands in the way
    for path in (Path(ta.home), Path(ta.home) / "projects", folder):
        path.chmod(0o755)
    (folder / "ds01-project.yaml").chmod(0o644)
    try:
        done = run(tb, user_cli, server, "project", "launch", str(folder))
        assert f"workspace {folder} is not owned by ds01tb" in one_line_error(done, 1)
        ps = docker(tb, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
        assert "prj-img" not in ps.stdout
    finally:
        (Path(ta.home) / "projects").chmod(0o700)
    mine = ok_json(ta, user_cli, server, "project", "list")
    assert {"prj-a", "prj-img"} <= {r["name"] for r in mine}
    row = next(r for r in mine if r["name"] == "prj-a")
    assert row["state"] == "running" and row["gpu_slots"]
    assert row["image"] == "ds01/ds01ta/prj-a:latest"
    theirs = ok_json(tb, user_cli, server, "project", "list")
    assert not [r for r in theirs if r["name"].startswith("prj-")], theirs
