"""``build_image`` in a real user's own process through the real gateway: the image lands in
the user's namespace with ds01's labels, the log is kept, and a failing step is named."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration

NAME = "img-buildapi"


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running
    for ref in (f"ds01/ds01ta/{NAME}:latest", f"ds01/ds01ta/{NAME}-bad:latest"):
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def _build_as(
    user: Any, cli_root: Path, server: ProjectsServer, directory: Path, spec: str
) -> subprocess.CompletedProcess[str]:
    """Write a definition from ``spec`` (Python for an ImageSpec) and build it, as ``user``."""
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
    labels = attrs["Config"]["Labels"]
    assert labels["ds01.image.name"] == NAME
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
