"""``ds01 doctor`` as a real user: all well is exit 0; a wrong DOCKER_HOST or BuildKit, an
unreachable service, loose ~/.ssh modes and a stopped container holding a GPU are found, each
with its fix; ✗ makes the exit status 1."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.projects_fixture import (
    TEST_IMAGE_REPO,
    TEST_IMAGE_TAG,
    ProjectsServer,
    ds01_as,
    projects_server,
)
from tests.plugins.projects.test_setup_dotfiles import _key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


@pytest.fixture
def home(unix_users: Any) -> Iterator[Path]:
    """A home for ds01ta's shell (HOME) with a good ~/.ssh; the real one is not touched."""
    user = unix_users["ds01ta"]
    home = Path(tempfile.mkdtemp(prefix="setup-doctor-"))
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(_key() + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    for path in (home, ssh, ssh / "authorized_keys"):
        os.chown(path, user.uid, user.gid)
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _doctor(server: ProjectsServer, user: Any, cli: Path, home: Path, **env: str) -> Any:
    good = {
        "HOME": str(home),
        "DOCKER_HOST": f"unix://{server.gateway_socket}",
        "DOCKER_BUILDKIT": "0",
    }
    return ds01_as(user, cli, server, "doctor", "--json", env={**good, **env})


def _by_check(done: Any) -> dict[str, list[dict[str, Any]]]:
    assert "Traceback" not in done.stderr
    data = json.loads(done.stdout)
    found: dict[str, list[dict[str, Any]]] = {}
    for f in data["findings"]:
        found.setdefault(f["check"], []).append(f)
    return found


def test_all_well_is_exit_0(
    server: ProjectsServer, unix_users: Any, user_cli: Path, home: Path
) -> None:
    ta = unix_users["ds01ta"]
    done = _doctor(server, ta, user_cli, home)
    assert done.returncode == 0, done.stdout + done.stderr
    found = _by_check(done)
    # other tests share ds01ta: their stopped containers or edited images may be advice (!)
    mine = ("service", "gateway", "docker", "ssh", "home", "workspace")
    assert {f["status"] for c in mine for f in found.get(c, [])} == {"ok"}, done.stdout
    assert "fail" not in {f["status"] for fs in found.values() for f in fs}
    assert set(found) >= {"service", "gateway", "docker", "ssh", "home", "gpus", "images"}
    assert "answers through the ds01 gateway" in found["gateway"][0]["message"]
    plain = ds01_as(
        ta,
        user_cli,
        server,
        "doctor",
        env={
            "HOME": str(home),
            "DOCKER_HOST": f"unix://{server.gateway_socket}",
            "DOCKER_BUILDKIT": "0",
        },
    )
    assert plain.returncode == 0 and "✗" not in plain.stdout
    last = plain.stdout.rstrip().splitlines()[-1]
    assert last == "no problems found" or last.startswith("0 broken, "), last
    assert "✓ service    the ds01 service answers" in plain.stdout


def test_docker_host_and_buildkit_are_checked(
    server: ProjectsServer, unix_users: Any, user_cli: Path, home: Path
) -> None:
    ta = unix_users["ds01ta"]
    done = _doctor(server, ta, user_cli, home, DOCKER_HOST="unix:///var/run/docker.sock")
    assert done.returncode == 1
    docker = _by_check(done)["docker"][0]
    assert docker["status"] == "fail"
    assert docker["message"].startswith("DOCKER_HOST is unix:///var/run/docker.sock")
    assert "ds01 setup --docker-host" in docker["fix"]
    done = _doctor(server, ta, user_cli, home, DOCKER_BUILDKIT="1")
    assert done.returncode == 1
    assert "classic builder" in _by_check(done)["docker"][0]["message"]
    text = ds01_as(ta, user_cli, server, "doctor", env={"HOME": str(home), "DOCKER_HOST": ""})
    assert text.returncode == 1 and "✗ docker     DOCKER_HOST is not set" in text.stdout
    assert "1 broken" in text.stdout


def test_loose_ssh_modes_are_advice_with_the_fix(
    server: ProjectsServer, unix_users: Any, user_cli: Path, home: Path
) -> None:
    keys = home / ".ssh" / "authorized_keys"
    keys.chmod(0o666)
    done = _doctor(server, unix_users["ds01ta"], user_cli, home)
    assert done.returncode == 0
    ssh = _by_check(done)["ssh"]
    assert ssh == [
        {
            "check": "ssh",
            "status": "warn",
            "message": f"{keys} is writable by others (sshd then ignores your keys)",
            "fix": f"chmod 600 {keys}",
            "details": [],
            "changed": [],
        }
    ]


def test_an_unreachable_service_is_one_clear_line(
    server: ProjectsServer, unix_users: Any, user_cli: Path, home: Path
) -> None:
    done = _doctor(
        server, unix_users["ds01ta"], user_cli, home, DS01_API_SOCKET="/nonexistent.sock"
    )
    assert done.returncode == 1
    (service,) = _by_check(done)["service"]
    assert service["status"] == "fail" and "does not answer" in service["message"]


def test_a_stopped_container_holding_a_gpu_is_found(
    server: ProjectsServer, unix_users: Any, user_cli: Path, home: Path
) -> None:
    ta = unix_users["ds01ta"]
    name = f"setup-doctor-{os.getpid()}"
    image = f"{TEST_IMAGE_REPO}:{TEST_IMAGE_TAG}"
    try:
        made = ds01_as(
            ta, user_cli, server, "container", "create", name, "--image", image, "--gpus", "1"
        )
        assert made.returncode == 0, made.stderr
        stopped = ds01_as(ta, user_cli, server, "container", "stop", name)
        assert stopped.returncode == 0, stopped.stderr
        done = _doctor(server, ta, user_cli, home)
        assert done.returncode == 0
        (gpus,) = _by_check(done)["gpus"]
        assert gpus["status"] == "warn"
        assert gpus["message"].startswith(f"container {name} is stopped but still holds 0.")
        assert gpus["message"].endswith(" GPU-equivalents of your quota")
        assert f"ds01 container remove {name}" in gpus["fix"]
    finally:
        ds01_as(ta, user_cli, server, "container", "remove", name, "--force")


def test_image_limits_in_words() -> None:
    from ds01_projects.user_doctor import _bytes, _limit

    assert _limit("images", 3, None, str).message == "3 images (no limit)"
    assert _limit("images", 3, 10, str).status == "ok"
    near = _limit("images", 10, 10, str)
    assert near.status == "warn" and "new builds may be refused" in near.message
    over = _limit("storage", 3 * 2**30, 2**30, _bytes, unit="")
    assert over.status == "fail" and over.message.endswith(": OVER")
    assert "ds01 image remove" in over.fix
