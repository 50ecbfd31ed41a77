"""A container's HOME found before it exists, checked against what the real engine gives the
container: the body's and the image's ``HOME``, the image's ``/etc/passwd`` (by name and uid),
none (``/``), and an image whose ``/etc/passwd`` is a link out of it (never followed)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from ds01_mlflow.home import container_home, passwd_home
from tests.helpers.gateway import DOCKER

pytestmark = pytest.mark.integration

MARKER = f"/etc/ds01-test-home-{os.getpid()}"  # on the host only: what a followed link reads
PASSWD = "root:x:0:0:root:/root:/bin/sh\\njo:x:1234:1234::/home/jo:/bin/sh\\n"


def build(tag: str, dockerfile: str) -> None:
    done = subprocess.run(
        [DOCKER, "build", "-q", "-t", tag, "-"], input=dockerfile, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def images(docker_engine, test_image) -> Iterator[dict[str, str]]:
    suffix = secrets.token_hex(3)
    made = {
        "passwd": f"ds01-test-home-passwd:{suffix}",
        "env": f"ds01-test-home-env:{suffix}",
        "link": f"ds01-test-home-link:{suffix}",
    }
    build(
        made["passwd"], f"FROM {test_image}\nRUN mkdir -p /etc && printf '{PASSWD}' > /etc/passwd\n"
    )
    build(made["env"], f"FROM {made['passwd']}\nENV HOME=/opt/home\n")
    build(made["link"], f"FROM {test_image}\nRUN mkdir -p /etc && ln -s {MARKER} /etc/passwd\n")
    yield made
    for tag in made.values():
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True)


def real_home(image: str, body: dict[str, Any]) -> str:
    """What the engine gives the container's process."""
    args = [DOCKER, "run", "--rm"]
    if body.get("User"):
        args += ["--user", body["User"]]
    for entry in body.get("Env") or []:
        args += ["-e", entry]
    done = subprocess.run(
        [*args, image, "sh", "-c", 'echo "$HOME"'], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("which", "body", "expected"),
    [
        ("busybox", {}, "/"),  # no /etc/passwd
        ("passwd", {}, "/root"),
        ("passwd", {"User": "jo"}, "/home/jo"),
        ("passwd", {"User": "1234:1234"}, "/home/jo"),
        ("passwd", {"User": "4321"}, "/"),  # a uid the image does not list
        ("env", {"User": "jo"}, "/opt/home"),  # the image's HOME wins over passwd
        ("passwd", {"Env": ["HOME=/tmp/ds01-home"]}, "/tmp/ds01-home"),  # the body's wins
    ],
)
def test_the_home_is_what_the_engine_gives(
    images, docker_engine, test_image, which: str, body: dict[str, Any], expected: str
) -> None:
    image = test_image if which == "busybox" else images[which]
    inspect = docker_engine.inspect_image(image)
    assert container_home({"Image": image, **body}, inspect) == expected
    assert real_home(image, body) == expected


def test_a_passwd_that_links_out_of_the_image_is_not_followed(images, docker_engine) -> None:
    with open(MARKER, "w") as host_file:
        host_file.write("root:x:0:0:root:/host-only:/bin/sh\n")
    try:
        inspect = docker_engine.inspect_image(images["link"])
        assert passwd_home(open(MARKER).read(), "root") == "/host-only"  # noqa: SIM115
        assert container_home({"Image": images["link"]}, inspect) == "/"
    finally:
        os.unlink(MARKER)
    assert real_home(images["link"], {}) == "/"
