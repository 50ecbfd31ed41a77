"""``projects.settings`` as a real user through ds01-api: the admin's catalogue, the caller's
own namespace, paths and limits, and the running gateway's socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.user_cli import run_as
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


def test_a_user_gets_their_own_settings(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    from ds01_projects.settings import Settings

    ta = unix_users["ds01ta"]
    done = run_as(ta, user_cli, ["plugins", "--json"], env={"DS01_API_SOCKET": server.api_socket})
    assert done.returncode == 0, done.stderr
    assert "projects" in done.stdout
    data = _settings_as(ta, user_cli, server)
    settings = Settings.from_json(data)
    assert settings.user == "ds01ta" and settings.namespace == "ds01/ds01ta"
    assert settings.gateway_socket == server.gateway_socket
    assert settings.workspace_root == f"{ta.home}/projects"
    assert settings.catalogue["busybox"].ref == "ds01-test:busybox"
    assert settings.repository("train") == "ds01/ds01ta/train"


def _settings_as(user: Any, cli_root: Path, server: ProjectsServer) -> dict[str, Any]:
    """``projects.settings`` called by ``user``'s own process over the API socket."""
    import subprocess

    script = (
        "import json,sys\n"
        f"sys.path.insert(0, {str(cli_root / 'site')!r})\n"
        "from ds01_core.transports.api_socket.client import ApiClient\n"
        "from ds01_projects.settings import OPERATIONS\n"
        f"print(json.dumps(ApiClient({server.api_socket!r}).call(OPERATIONS[0], {{}})))\n"
    )
    done = subprocess.run(
        ["runuser", "-u", user.name, "--", "/usr/bin/python3", "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=user.home,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
