"""FIX-04: ``ds01 setup`` lists exactly the user's own images (their namespace, built through
the gateway as them) and containers, never another user's; ``ds01 doctor`` notices an image
whose Dockerfile changed after it was built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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

pytestmark = pytest.mark.integration

BASE = f"{TEST_IMAGE_REPO}:{TEST_IMAGE_TAG}"


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    with projects_server() as running:
        yield running


def build_as(
    user: Any, cli: Path, server: ProjectsServer, folder: Path, ref: str, **labels: str
) -> None:
    """``docker build`` as the user through the gateway (Docker's SDK, as ds01's own builds:
    the docker CLI 28 sends an empty ``cgroupparent``, which the gateway refuses)."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(cli / 'site')!r})\n"
        "import docker\n"
        f"api = docker.APIClient(base_url={'unix://' + server.gateway_socket!r})\n"
        f"out = list(api.build(path={str(folder)!r}, tag={ref!r}, labels={labels!r}, "
        "decode=True))\n"
        "errors = [c for c in out if 'error' in c]\n"
        "sys.exit(str(errors) if errors else 0)\n"
    )
    done = subprocess.run(
        ["runuser", "-u", user.name, "--", "/usr/bin/python3", "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def folder(unix_users: Any) -> Iterator[Path]:
    """A definition folder ds01ta owns, with a Dockerfile."""
    user = unix_users["ds01ta"]
    path = Path(tempfile.mkdtemp(prefix="setup-def-"))
    (path / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo one > /setup-one\n")
    for p in (path, path / "Dockerfile"):
        os.chown(p, user.uid, user.gid)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_setup_lists_exactly_the_users_own_images_and_containers(
    server: ProjectsServer,
    unix_users: Any,
    user_cli: Path,
    docker_engine: Any,
    folder: Path,
) -> None:
    ta, tb = unix_users["ds01ta"], unix_users["ds01tb"]
    tag = f"setup-fix04-{os.getpid()}"
    mine, theirs = f"ds01/ds01ta/{tag}:latest", f"ds01/ds01tb/{tag}:latest"
    containers = {
        "ds01ta": f"setup-fix04-a-{os.getpid()}",
        "ds01tb": f"setup-fix04-b-{os.getpid()}",
    }
    try:
        for user, ref in ((ta, mine), (tb, theirs)):
            build_as(user, user_cli, server, folder, ref)
        for user in (ta, tb):
            made = ds01_as(
                user,
                user_cli,
                server,
                "container",
                "create",
                containers[user.name],
                "--image",
                BASE,
                "--cpu-only",
            )
            assert made.returncode == 0, made.stderr
        done = ds01_as(
            ta,
            user_cli,
            server,
            "setup",
            "--yes",
            "--no-project",
            "--no-docker-host",
            "--json",
            env={"HOME": str(folder)},
        )
        assert "Traceback" not in done.stderr
        report = json.loads(done.stdout)
        images = next(f for f in report["findings"] if f["check"] == "images")
        listed = [line.split()[0] for line in images["details"]]
        assert mine in listed and theirs not in listed
        assert all(ref.startswith("ds01/ds01ta/") for ref in listed), listed
        boxes = next(f for f in report["findings"] if f["check"] == "containers")
        names = [line.split()[0] for line in boxes["details"]]
        assert containers["ds01ta"] in names and containers["ds01tb"] not in names
    finally:
        for user in (ta, tb):
            ds01_as(user, user_cli, server, "container", "remove", containers[user.name], "--force")
        for ref in (mine, theirs):
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def test_doctor_notices_a_dockerfile_changed_since_the_build(
    server: ProjectsServer, unix_users: Any, user_cli: Path, folder: Path
) -> None:
    """``ds01 image create`` builds it (the label, or the build record where the gateway keeps
    ds01's labels to itself); a hand edit of the Dockerfile then shows in ``ds01 doctor``."""
    ta = unix_users["ds01ta"]
    name = f"setup-stale-{os.getpid()}"
    ref = f"ds01/ds01ta/{name}:latest"
    definition = folder / name
    env = {
        "HOME": str(folder),
        "DOCKER_HOST": f"unix://{server.gateway_socket}",
        "DOCKER_BUILDKIT": "0",
    }
    try:
        made = ds01_as(
            ta, user_cli, server, "image", "create", name, "--base", "busybox",
            "--dir", str(definition), "--yes", env=env,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        fresh = json.loads(ds01_as(ta, user_cli, server, "doctor", "--json", env=env).stdout)
        # (other tests' images of ds01ta may be there: only this one counts)
        assert not [f for f in fresh["findings"] if f["message"].startswith(ref)]
        dockerfile = definition / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "RUN echo two > /setup-two\n")
        done = ds01_as(ta, user_cli, server, "doctor", "--json", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        stale = [f for f in json.loads(done.stdout)["findings"] if f["message"].startswith(ref)]
        assert stale == [
            {
                "check": "stale",
                "status": "warn",
                "message": f"{ref}: {definition}/Dockerfile changed since the image was built",
                "fix": f"`ds01 image rebuild {name}` (or `ds01 project launch` in {definition})",
                "details": [],
                "changed": [],
            }
        ]
    finally:
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def test_doctor_measures_images_against_the_limits(
    unix_users: Any, user_cli: Path, folder: Path, docker_engine: Any, test_image: str
) -> None:
    tb = unix_users["ds01tb"]
    ref = f"ds01/ds01tb/setup-limit-{os.getpid()}:latest"
    os.chown(folder, tb.uid, tb.gid)
    extra = {"limits": {"defaults": {"max_images": 1, "max_image_storage": "1KiB"}}}
    with projects_server(extra) as limited:
        try:
            build_as(tb, user_cli, limited, folder, ref)
            done = ds01_as(tb, user_cli, limited, "doctor", "--json", env={"HOME": str(folder)})
            assert done.returncode == 1 and "Traceback" not in done.stderr
            found = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
            images, storage = found["images"], found["storage"]
            # other tests may have left images of ds01tb: one (at the limit) or more (over)
            assert images["status"] in ("warn", "fail") and " of 1 allowed" in images["message"]
            assert storage["status"] == "fail" and storage["message"].endswith(
                "of 1.0K allowed: OVER"
            )
            assert "ds01 image remove" in storage["fix"]
        finally:
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)
