"""``ds01 container retire [--save-packages]`` as a real user: the packages installed by hand,
found from the container's filesystem changes, land in the project's ds01-image.yaml and
Dockerfile before the container goes; without a definition nothing is removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.gateway import docker
from tests.plugins.projects.project_helpers import clean_up, ok_json, one_line_error, run
from tests.plugins.projects.projects_fixture import ProjectsServer, projects_server

pytestmark = pytest.mark.integration

#: what pip, apt and conda leave behind (the busybox test image has none of them)
BY_HAND = (
    "mkdir -p /usr/lib/python3/site-packages/requests-2.31.0.dist-info"
    " && echo 'Name: requests' > /usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA"
    " && mkdir -p /usr/lib/python3/site-packages/typing_extensions-4.9.0.dist-info"
    " && mkdir -p /var/lib/dpkg/info && touch /var/lib/dpkg/info/htop.list"
    " && touch /var/lib/dpkg/info/libnl-3-200:amd64.list"
    " && mkdir -p /opt/conda/conda-meta && echo '{}' > /opt/conda/conda-meta/tqdm-4.66.1-pyhd8ed1ab_0.json"
)


@pytest.fixture(scope="module")
def server(
    unix_users: Any, docker_engine: Any, test_image: str, user_cli: Path
) -> Iterator[ProjectsServer]:
    users = [unix_users["ds01ta"]]
    clean_up(docker_engine, users, prefix="prj-rt")
    with projects_server() as running:
        yield running
    clean_up(docker_engine, users, prefix="prj-rt")


def test_save_packages_records_them_and_removes_the_container(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    ok_json(ta, user_cli, server, "project", "init", "prj-rt", "--pip", "numpy", "--yes")
    launched = ok_json(ta, user_cli, server, "project", "launch", "prj-rt")
    assert launched["gpu_slots"]
    done = docker(ta, server.gateway_socket, "exec", "ds01ta-prj-rt", "sh", "-c", BY_HAND)
    assert done.returncode == 0, done.stderr
    data = ok_json(
        ta, user_cli, server, "container", "retire", "ds01ta-prj-rt", "--save-packages", "--yes"
    )
    folder = Path(ta.home) / "projects" / "prj-rt"
    assert data["definition"] == str(folder) and data["removed"] is True
    assert data["saved"] == {
        "pip": ["requests==2.31.0", "typing-extensions==4.9.0"],
        "apt": ["htop", "libnl-3-200"],
        "conda": ["tqdm=4.66.1"],
    }
    spec = yaml.safe_load((folder / "ds01-image.yaml").read_text())
    assert spec["pip"] == ["numpy", "requests==2.31.0", "typing-extensions==4.9.0"]
    assert spec["apt"] == ["htop", "libnl-3-200"] and spec["conda"] == ["tqdm=4.66.1"]
    dockerfile = (folder / "Dockerfile").read_text()
    assert "requests==2.31.0" in dockerfile and "htop" in dockerfile and "tqdm=4.66.1" in dockerfile
    ps = docker(ta, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
    assert "ds01ta-prj-rt" not in ps.stdout.split()
    listed = ok_json(ta, user_cli, server, "container", "list", "--all")
    assert "ds01ta-prj-rt" not in [c["name"] for c in listed]
    # the next launch builds the saved packages into the image
    again = ok_json(ta, user_cli, server, "project", "launch", "prj-rt")
    assert again["built"] is True and again["action"] == "created"
    done = docker(ta, server.gateway_socket, "exec", "ds01ta-prj-rt", "cat", "/ds01-installed/apt")
    assert done.stdout.split() == ["htop", "libnl-3-200"], done.stderr


def test_save_packages_again_says_what_is_listed_already(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    done = docker(ta, server.gateway_socket, "exec", "ds01ta-prj-rt", "sh", "-c", BY_HAND)
    assert done.returncode == 0, done.stderr
    done = run(
        ta, user_cli, server, "container", "retire", "ds01ta-prj-rt", "--save-packages", "--yes"
    )
    assert done.returncode == 0, done.stderr
    assert "already listed (pip): requests==2.31.0 typing-extensions==4.9.0" in done.stdout
    assert "saved" not in done.stdout and "removed ds01ta-prj-rt" in done.stdout


def test_without_a_definition_nothing_is_removed(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta = unix_users["ds01ta"]
    done = run(
        ta,
        user_cli,
        server,
        *("container", "create", "prj-rt-plain", "--image", "ds01-test:busybox", "--cpu-only"),
        *("sleep", "3600"),
    )
    assert done.returncode == 0, done.stderr
    assert run(ta, user_cli, server, "container", "start", "prj-rt-plain").returncode == 0
    done = docker(ta, server.gateway_socket, "exec", "prj-rt-plain", "sh", "-c", BY_HAND)
    assert done.returncode == 0, done.stderr
    done = run(
        ta, user_cli, server, "container", "retire", "prj-rt-plain", "--save-packages", "--yes"
    )
    message = one_line_error(done, 1)
    assert "nowhere to save its packages; nothing was removed" in message
    assert "pip: requests==2.31.0" in message and "apt: htop" in message
    ps = docker(ta, server.gateway_socket, "ps", "--format", "{{.Names}}")
    assert "prj-rt-plain" in ps.stdout.split()
    done = run(ta, user_cli, server, "container", "retire", "prj-rt-plain", "--yes")
    assert done.returncode == 0 and "removed prj-rt-plain" in done.stdout, done.stderr
    ps = docker(ta, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
    assert "prj-rt-plain" not in ps.stdout.split()


def test_retire_of_a_container_that_is_not_yours_is_not_found(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    ta, tb = unix_users["ds01ta"], unix_users["ds01tb"]
    assert ok_json(ta, user_cli, server, "project", "launch", "prj-rt")["action"] == "created"
    done = run(tb, user_cli, server, "container", "retire", "ds01ta-prj-rt", "--yes")
    assert "container ds01ta-prj-rt belongs to another user" in one_line_error(done, 1)
    ps = docker(ta, server.gateway_socket, "ps", "-a", "--format", "{{.Names}}")
    assert "ds01ta-prj-rt" in ps.stdout.split()
    done = run(tb, user_cli, server, "container", "retire", "prj-rt-none", "--yes")
    assert "no container 'prj-rt-none' of yours" in one_line_error(done, 1)
