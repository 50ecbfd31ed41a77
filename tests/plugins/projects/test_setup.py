"""``ds01 setup`` as a real user through ds01-api and the gateway: a fresh account completes
non-interactively, a second run only reports, keys and channels are set by flags, and wrong
flags are usage errors (exit 2) without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.projects_fixture import ProjectsServer, ds01_as, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


@pytest.fixture
def fresh_home(unix_users: Any) -> Iterator[Path]:
    """A brand-new home for ds01tb (HOME points at it): nothing in it, owned by the user; the
    real home's dotfiles are never touched."""
    user = unix_users["ds01tb"]
    home = Path(tempfile.mkdtemp(prefix="setup-home-"))
    os.chown(home, user.uid, user.gid)
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _setup(server: ProjectsServer, user: Any, cli: Path, home: Path, *args: str, **kw: Any) -> Any:
    env = {"HOME": str(home), "DOCKER_HOST": "", **kw.pop("env", {})}
    return ds01_as(user, cli, server, "setup", *args, env=env, **kw)


def _key(home: Path, user: Any) -> Path:
    """A key pair made "on the laptop" (a folder in the home the user can read)."""
    laptop = home / "laptop"
    laptop.mkdir()
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "setup-test",
            "-f",
            str(laptop / "k"),
        ],
        check=True,
    )
    for path in (laptop, laptop / "k", laptop / "k.pub"):
        os.chown(path, user.uid, user.gid)
    return laptop / "k.pub"


def test_a_fresh_account_completes_non_interactively(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    tb = unix_users["ds01tb"]
    done = _setup(server, tb, user_cli, fresh_home, "--non-interactive", "--no-project")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr
    assert out.startswith("First-time setup for ds01tb")
    assert f"✓ account    ds01tb (uid {tb.uid}), not an admin" in out
    assert "GPU quota: up to 2 GPU-equivalents at once (2 whole GPUs" in out
    block = f"export DOCKER_HOST=unix://{server.gateway_socket}\nexport DOCKER_BUILDKIT=0"
    for name in (".profile", ".bashrc"):
        path = fresh_home / name
        assert block in path.read_text() and path.stat().st_uid == tb.uid
        assert f"changed: {path}: DOCKER_HOST block added" in out
    assert "Docker" in out and "answers through the ds01 gateway" in out
    assert "! ssh" in out and "ssh-copy-id" in out
    # other tests share the test users: their images and containers may be there
    assert "✓ images" in out and "✓ containers" in out and "✓ projects" in out
    assert "✓ project    no project offered (--no-project)" in out
    assert "✓ notify     you are told through: terminal, container_file" in out
    record = fresh_home / ".ds01" / "setup.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and record.stat().st_uid == tb.uid
    data = json.loads(record.read_text())
    assert data["runs"] == 1 and {c["check"] for c in data["changes"]} == {"docker"}

    # a second run reports, changes nothing, and the files keep one block each
    again = _setup(server, tb, user_cli, fresh_home, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("Checking your setup again for ds01tb")
    assert "changed:" not in again.stdout
    assert "this shell has not read them" in again.stdout
    for name in (".profile", ".bashrc"):
        assert (fresh_home / name).read_text().count("# >>> ds01 >>>") == 1
    # no project is offered again; a non-interactive first run without --project says how
    assert "no project yet" in again.stdout and "ds01 project init NAME" in again.stdout
    assert "bases: busybox (ds01-test:busybox)" in again.stdout
    assert json.loads(record.read_text())["runs"] == 2

    # with DOCKER_HOST read by the shell, the docker step is all fine
    env = {"DOCKER_HOST": f"unix://{server.gateway_socket}", "DOCKER_BUILDKIT": "0"}
    third = _setup(server, tb, user_cli, fresh_home, "--yes", "--json", env=env)
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert report["first_run"] is False and report["user"] == "ds01tb"
    docker = [f for f in report["findings"] if f["check"] == "docker"]
    assert [f["status"] for f in docker] == ["ok", "ok"]
    assert report["summary"]["fail"] == 0


def test_a_public_key_is_added_and_a_bad_one_refused(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    tb = unix_users["ds01tb"]
    pub = _key(fresh_home, tb)
    done = _setup(
        server, tb, user_cli, fresh_home, "--yes", "--no-project", f"--ssh-key-file={pub}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    keys = fresh_home / ".ssh" / "authorized_keys"
    assert keys.read_text() == pub.read_text()
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.parent.stat().st_mode) == 0o700
    assert "✓ ssh        1 key in ~/.ssh/authorized_keys" in done.stdout
    # the same key again: nothing added
    again = _setup(server, tb, user_cli, fresh_home, "--yes", f"--ssh-key-file={pub}")
    assert keys.read_text() == pub.read_text() and "authorized_keys: the key" not in again.stdout
    private = pub.with_suffix("")
    bad = _setup(server, tb, user_cli, fresh_home, "--yes", f"--ssh-key-file={private}")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "PRIVATE key" in bad.stdout
    assert keys.read_text() == pub.read_text()


def test_notification_channels_are_set_by_flag(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    tb = unix_users["ds01tb"]
    try:
        done = _setup(server, tb, user_cli, fresh_home, "--yes", "--notify-channels", "terminal")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "✓ notify     you are told through: terminal" in done.stdout
        assert "changed: container_file turned off" in done.stdout
        prefs = ds01_as(tb, user_cli, server, "notify", "prefs", "--json")
        used = [c["channel"] for c in json.loads(prefs.stdout)["channels"] if c["used"]]
        assert used == ["terminal"]
        refused = _setup(server, tb, user_cli, fresh_home, "--yes", "--notify-channels", "email")
        assert refused.returncode == 1
        assert "email cannot be chosen on this server" in refused.stdout
        assert "choose among: terminal, container_file" in refused.stdout
    finally:
        ds01_as(tb, user_cli, server, "notify", "prefs", "--enable", "container_file")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--project", "setup-x", "--no-project"), "choose one of --project NAME and --no-project"),
        (("--base", "nosuch"), "--base: 'nosuch' is not in the catalogue; the keys are: busybox"),
        (("--gpus", "-1"), "--gpus must be 0 or more"),
        (("--notify-channels", ","), "--notify-channels: name at least one channel"),
        (("--gpus", "many"), "'many' is not a valid integer"),
    ],
)
def test_wrong_flags_are_usage_errors(
    server: ProjectsServer,
    unix_users: Any,
    user_cli: Path,
    fresh_home: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    done = _setup(server, unix_users["ds01tb"], user_cli, fresh_home, "--yes", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (fresh_home / ".profile").exists()


def test_the_first_project_is_made_and_launched(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    tb = unix_users["ds01tb"]
    name = f"setup-first-{os.getpid()}"
    folder = Path(tb.home) / "projects" / name
    container = f"ds01tb-{name}"
    try:
        done = _setup(
            server, tb, user_cli, fresh_home, "--yes", "--project", name, "--gpus", "1", "--launch"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"✓ project    project {name} created in {folder} (1 GPU)" in done.stdout
        assert f"✓ project    container {container} created and started" in done.stdout
        assert (folder / "Dockerfile").is_file() and (folder / "ds01-project.yaml").is_file()
        listed = ds01_as(tb, user_cli, server, "container", "list", "--json")
        (box,) = [c for c in json.loads(listed.stdout) if c["name"] == container]
        assert box["status"] == "running" and box["gpu_slots"], box
        assert json.loads((fresh_home / ".ds01" / "setup.json").read_text())["project"] == name
        # a second run does not offer another project: the user has one
        again = _setup(server, tb, user_cli, fresh_home, "--yes", "--no-docker-host")
        assert "✓ project    you have a project already" in again.stdout
        assert name in again.stdout  # listed among the projects
        # a wrong project name is a usage error
        bad = _setup(server, tb, user_cli, fresh_home, "--yes", "--project", "Bad Name")
        assert bad.returncode == 2 and "invalid project name" in bad.stderr
    finally:
        ds01_as(tb, user_cli, server, "container", "remove", container, "--force")
        subprocess.run(["docker", "rmi", "-f", f"ds01/ds01tb/{name}:latest"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_check_only_reports_and_writes_nothing(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    tb = unix_users["ds01tb"]
    done = _setup(server, tb, user_cli, fresh_home, "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "! docker" in done.stdout and "DOCKER_HOST is not set" in done.stdout
    assert list(fresh_home.iterdir()) == []
    refused = _setup(server, tb, user_cli, fresh_home, "--check", "--docker-host")
    assert refused.returncode == 2
    assert "--check changes nothing: leave out --docker-host" in refused.stderr


def test_a_home_it_cannot_write_is_one_clear_line(
    server: ProjectsServer, unix_users: Any, user_cli: Path, fresh_home: Path
) -> None:
    fresh_home.chmod(0o555)  # the user's, but read-only
    try:
        done = _setup(server, unix_users["ds01tb"], user_cli, fresh_home, "--yes", "--no-project")
    finally:
        fresh_home.chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert f"✗ docker     cannot write {fresh_home}" in done.stdout
    assert "Permission denied" in done.stdout
    assert f"✗ record     cannot write {fresh_home}/.ds01/setup.json" in done.stdout
    assert list(fresh_home.iterdir()) == []
