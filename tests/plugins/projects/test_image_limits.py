"""``max_images`` / ``max_image_storage`` as ``ds01 image`` shows them: where the user stands
before a build, and a build past the limit refused before it starts, in the gateway's words,
as one ``Error:`` line (the gateway itself is the enforcement)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.conftest import unavailable
from tests.plugins.projects.image_helpers import build_as, clean
from tests.plugins.projects.projects_fixture import ProjectsServer, ds01_as, projects_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[ProjectsServer]:
    from ds01_core.domain.config.schema import LimitSet

    if "max_images" not in {f.name for f in attrs.fields(LimitSet)}:
        unavailable("this core has no image limits yet (max_images: the gateway's namespace work)")
    extra = {"limits": {"defaults": {"max_images": 1, "max_image_storage": "10GiB"}}}
    try:
        with projects_server(extra) as running:
            yield running
    finally:
        clean(("ds01tb",))


def test_a_build_past_max_images_is_refused_before_it_starts(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    tb = unix_users["ds01tb"]
    first = ds01_as(tb, user_cli, server, "image", "create", "img-lim1", "--yes")
    assert first.returncode == 0, first.stderr
    assert "your images: 0 of 1 images, 0B of 10.0G" in first.stdout
    second = ds01_as(tb, user_cli, server, "image", "create", "img-lim2", "--yes")
    assert second.returncode == 1
    assert second.stderr.strip().startswith(
        "Error: you have 1 images and may have 1 (max_images): rebuild one of yours under its "
        "own name, or remove one first"
    )
    assert "Traceback" not in second.stderr
    assert not Path(f"{tb.home}/.ds01/images/img-lim2/.ds01/build.log").exists()
    again = ds01_as(
        tb, user_cli, server, "image", "update", "img-lim1", "--add-pip", "x", "--yes", "--json"
    )
    assert again.returncode == 0, again.stderr  # a rebuild replaces: the count does not grow
    assert json.loads(again.stdout)["built"]["ref"] == "ds01/ds01tb/img-lim1:latest"


def test_the_gateways_own_refusal_reaches_the_user_in_its_words(
    server: ProjectsServer, unix_users: Any, user_cli: Path
) -> None:
    """``build_image`` without ``ds01 image``'s early check: the gateway refuses."""
    tb = unix_users["ds01tb"]
    directory = Path(tb.home) / ".ds01" / "images" / "img-lim3"
    spec = "ImageSpec(name='img-lim3', base='ds01-test:busybox', base_key='busybox')"
    done = build_as(tb, user_cli, server, directory, spec)
    assert done.returncode == 3, done.stdout
    assert done.stderr.startswith("you have 1 images and may have 1 (max_images)")
    assert f"(the log is at {directory}/.ds01/build.log)" in done.stderr
