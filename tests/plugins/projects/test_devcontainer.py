"""The generated ``.devcontainer/devcontainer.json`` with the real Dev Containers CLI (what VS Code
runs), as a real user, against the ds01 gateway: the image is built, the container runs as the
user's uid with the folder at /workspace and a GPU the gateway allocated, nothing is refused.

The CLI comes from ``scripts/ci/setup-devcontainers.sh`` (``.ci/run`` calls it);
``DS01_DEVCONTAINER_CLI`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable
from tests.helpers.gateway import as_user
from tests.plugins.projects.project_helpers import clean_up, inspect, ok_json
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration

CLI = os.environ.get(
    "DS01_DEVCONTAINER_CLI", "/opt/ds01-devcontainers/node_modules/.bin/devcontainer"
)


@pytest.fixture(scope="module")
def server(
    unix_users: Any, docker_engine: Any, test_image: str, user_cli: Path
) -> Iterator[ProjectsServer]:
    if not os.access(CLI, os.X_OK):
        unavailable(f"the Dev Containers CLI {CLI} is not installed")
    users = [unix_users["ds01ta"]]
    clean_up(docker_engine, users, prefix="prj-dev")
    with projects_server() as running:
        yield running
    clean_up(docker_engine, users, prefix="prj-dev")


def devcontainer(user: Any, server: ProjectsServer, *args: str) -> Any:
    """``devcontainer ARGS`` as ``user``, DOCKER_HOST at the gateway, the classic builder."""
    return as_user(
        user,
        server.gateway_socket,
        "env",
        "DOCKER_BUILDKIT=0",
        CLI,
        *args,
        timeout=300,
    )


def test_devcontainer_up_through_the_gateway(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    ok_json(ta, user_cli, server, "project", "init", "prj-dev", "--gpus", "1", "--yes")
    folder = Path(ta.home) / "projects" / "prj-dev"
    (folder / "hello.txt").write_text("from the host\n")
    os.chown(folder / "hello.txt", ta.uid, ta.gid)

    up = devcontainer(ta, server, "up", "--workspace-folder", str(folder), "--buildkit", "never")
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-4000:]}"
    result = json.loads(up.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "success", result
    assert result["remoteWorkspaceFolder"] == "/workspace"

    def inside(*command: str) -> str:
        done = devcontainer(ta, server, "exec", "--workspace-folder", str(folder), *command)
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr[-2000:]}"
        return str(done.stdout)

    # the user's own uid and gid; the folder at /workspace; files written there are the user's
    assert inside("id", "-u").strip() == str(ta.uid)
    assert inside("id", "-g").strip() == str(ta.gid)
    assert inside("cat", "/workspace/hello.txt") == "from the host\n"
    inside("sh", "-c", "echo made inside > /workspace/made.txt")
    made = folder / "made.txt"
    assert made.read_text() == "made inside\n" and made.stat().st_uid == ta.uid

    # the GPU: allocated by the gateway's admission, and only that one
    details = inspect(ta, server, result["containerId"])
    labels = details["Config"]["Labels"]
    assert labels["ds01.user"] == "ds01ta"
    assert labels["ds01.gpu.slots"] and len(labels["ds01.gpu.uuids"].split(",")) == 1
    env = dict(e.split("=", 1) for e in details["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == labels["ds01.gpu.uuids"]
    assert env["DS01_PROJECT"] == "prj-dev"

    # nothing the CLI did was refused by the gateway
    events = [json.loads(line) for line in server.events.read_text().splitlines() if line]
    denied = [e for e in events if e["event_type"] == "access.denied" and e["user"] == "ds01ta"]
    assert not denied, denied

    # and `ds01 project list` shows the dev container under its project
    rows = ok_json(ta, user_cli, server, "project", "list")
    row = next(r for r in rows if r["name"] == "prj-dev")
    assert [d["state"] for d in row["dev_containers"]] == ["running"]
    assert row["dev_containers"][0]["gpu_slots"] == labels["ds01.gpu.slots"].split(",")
