"""``projects.images`` as real users against the real engine: each sees their own images (tags
under ``ds01/<user>/``) and nobody else's, nor the shared ones."""

from __future__ import annotations

import io
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from tests.helpers.config import write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tagged(unix_users: Any, docker_engine: Any, test_image: str) -> Iterator[dict[str, str]]:
    tag = f"own{os.getpid()}"
    refs = {user: f"ds01/{user}/webimg:{tag}" for user in ("ds01ta", "ds01tb")}
    for user, ref in refs.items():  # an image of its own (a tag of the shared one is shared)
        dockerfile = f"FROM {test_image}\nLABEL ds01.test.own-images={user}-{tag}\n"
        for _ in docker_engine.api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True):
            pass
    yield refs
    for ref in refs.values():
        docker_engine.api.remove_image(ref, force=True)


def as_user(tmp_path: Path, name: str) -> ServiceContext:
    runtime = load_runtime(str(write_config(tmp_path)))
    caller = Caller.from_uid(pwd.getpwnam(name).pw_uid, runtime.config.gateway.admin_group)
    assert caller is not None
    return ServiceContext(runtime, caller)


def test_each_user_lists_only_their_own_images(tmp_path: Path, tagged: dict[str, str]) -> None:
    mine = call(as_user(tmp_path, "ds01ta"), "projects.images")
    refs = {row["ref"] for row in mine}
    assert tagged["ds01ta"] in refs
    assert tagged["ds01tb"] not in refs and "ds01-test:busybox" not in refs
    row = next(r for r in mine if r["ref"] == tagged["ds01ta"])
    assert row["size"] > 0 and row["id"].startswith("sha256:") and row["created"].endswith("Z")
    theirs = {row["ref"] for row in call(as_user(tmp_path, "ds01tb"), "projects.images")}
    assert tagged["ds01tb"] in theirs and tagged["ds01ta"] not in theirs
