"""``allowed_bases: catalogue`` as a real user meets it: a base outside the catalogue is
refused before anything is written, naming what is allowed (exit 2); another tag of a
catalogue image and an ``extra_allowed_bases`` pattern are accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.projects.image_helpers import clean
from tests.plugins.projects.projects_fixture import ProjectsServer, ds01_as, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    extra = {
        "plugins": {
            "projects": {"allowed_bases": "catalogue", "extra_allowed_bases": ["nvcr.io/nvidia/*"]}
        }
    }
    try:
        with projects_server(extra) as running:
            yield running
    finally:
        clean(("ds01tb",))


def test_a_base_outside_the_catalogue_is_refused_with_the_allowed_ones(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    tb = unix_users["ds01tb"]
    done = ds01_as(
        tb, user_cli, server, "image", "create", "img-base", "--base", "python:3.12", "--yes"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "Error: the base python:3.12 is not allowed on this server: choose one of busybox "
        "(ds01-test:busybox), images matching nvcr.io/nvidia/*"
    )
    assert not Path(f"{tb.home}/.ds01/images/img-base").exists()


@pytest.mark.parametrize(
    ("base", "install"),
    [
        # another tag of the catalogue's image: that entry's install commands
        ("ds01-test:other-tag", "RUN mkdir -p /ds01-installed && echo x >> /ds01-installed/pip"),
        ("nvcr.io/nvidia/pytorch:24.01-py3", "RUN pip install --no-cache-dir x"),
    ],
)
def test_allowed_bases_are_accepted(
    server: ProjectsServer, unix_users: Any, user_cli: Path, base: str, install: str
) -> None:
    tb = unix_users["ds01tb"]
    done = ds01_as(
        tb, user_cli, server, "image", "create", "img-base-ok", "--base", base, "--pip", "x",
        "--no-build", "--force", "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dockerfile = Path(f"{tb.home}/.ds01/images/img-base-ok/Dockerfile").read_text()
    assert f"FROM {base}\n" in dockerfile
    assert f"{install}\n" in dockerfile


def test_a_plain_docker_build_is_held_to_the_same_bases(
    server: ProjectsServer, unix_users: Any, docker_engine: Any, test_image: str
) -> None:
    """``docker build`` through the gateway, not ``ds01 image``: the gateway asks the plugin
    (the ``check_build`` hook) about every image the Dockerfile reads, so a base outside the
    catalogue is refused there too; the catalogue's image and the user's own image build."""
    import os
    import shutil
    import subprocess
    import tempfile

    from tests.helpers.gateway import DOCKER, as_user

    tb = unix_users["ds01tb"]
    other = f"img-notallowed-{os.getpid()}:1"  # the test image under a name the catalogue lacks
    own = f"ds01/ds01tb/img-own-{os.getpid()}:1"
    subprocess.run([DOCKER, "tag", test_image, other], check=True, capture_output=True)
    tmp_path = Path(tempfile.mkdtemp(prefix="img-bases-"))  # where ds01tb can read it
    tmp_path.chmod(0o755)

    def build(dockerfile: str, tag: str) -> Any:
        context = tmp_path / f"ctx{abs(hash(dockerfile))}"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        context.chmod(0o755)
        (context / "Dockerfile").chmod(0o644)
        return as_user(
            tb, server.gateway_socket, "DOCKER_BUILDKIT=0", DOCKER, "build", "-t", tag,
            str(context), timeout=120,
        )  # fmt: skip

    try:
        refused = build(f"FROM {other}\n", f"img-x-{os.getpid()}")
        assert refused.returncode != 0
        assert f"{other} is not a base the admins allow" in refused.stderr, refused.stderr
        assert "ds01-test:busybox" in refused.stderr  # what is allowed instead
        staged = build(f"FROM {test_image} AS a\nFROM {other}\nCOPY --from=a /bin/sh /x\n", "x")
        assert "is not a base the admins allow" in staged.stderr  # every FROM is asked about
        made = build(f"FROM {test_image}\nRUN echo ok > /ok\n", own)
        assert made.returncode == 0, made.stderr
        mine = build(f"FROM {own}\n", f"ds01/ds01tb/img-own2-{os.getpid()}:1")
        assert mine.returncode == 0, mine.stderr  # an image of one's own, from an allowed base
    finally:
        made = (other, own, f"ds01/ds01tb/img-own2-{os.getpid()}:1", f"img-x-{os.getpid()}")
        for ref in made:  # img-x only if the refusal failed
            subprocess.run([DOCKER, "rmi", "-f", ref], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)
