"""Fixtures shared by every test: a real Docker engine, the test image, throw-away containers,
and a throw-away configuration file.

Integration tests (everything under ``tests/integration/``, and anything marked
``@pytest.mark.integration``) need a Docker engine. Without one they are skipped locally, with
a note on how to start one, and **fail** under ``CI=true``: CI must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from ds01_core.domain.docker_engine import DockerAdapter, DockerError, docker_host
from tests.helpers.config import write_config

TESTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIR = TESTS_DIR / "integration"
TEST_IMAGE = "ds01-test:busybox"
SETUP_HINT = "start one with: bash scripts/ci/setup-docker.sh (as root)"
#: label put on every container the factory creates, valued with this run's prefix
RUN_LABEL = "ds01.test.run"

try:  # CI machines are slow and shared: no per-example deadlines there
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
    if os.environ.get("CI") == "true":
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a test dependency, but a bare pytest run may lack it
    pass


def in_ci() -> bool:
    """``CI=true``, as GitHub Actions, GitLab CI and ``.ci/run`` set it."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing engine must never turn CI green."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration tests must not be skipped)", pytrace=False)
    pytest.skip(f"{reason}; {SETUP_HINT}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration/ as ``integration`` (before ``-m`` selects)."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _integration_needs_engine(request: pytest.FixtureRequest) -> None:
    """An ``integration`` test gets the engine check even if it never asks for the engine."""
    if request.node.get_closest_marker("integration") is not None:
        request.getfixturevalue("docker_engine")


# -- Docker ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerAdapter]:
    """A connected :class:`DockerAdapter` for the engine at ``DOCKER_HOST`` (or the local
    socket); skipped locally and failed in CI when it does not answer."""
    adapter = DockerAdapter.from_env()
    if not adapter.ping():
        try:
            adapter.version()
            detail = "it did not answer a ping"
        except DockerError as err:
            detail = str(err)
        adapter.close()
        unavailable(
            f"no Docker engine at {docker_host()}: {detail}"
            if detail.startswith("it ")
            else f"no Docker engine: {detail}"
        )
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def test_image(docker_engine: DockerAdapter) -> str:
    """The registry-free busybox image the integration tests run (``ds01-test:busybox``)."""
    if docker_engine.inspect_image(TEST_IMAGE) is None:
        unavailable(f"the Docker engine has no image {TEST_IMAGE}")
    return TEST_IMAGE


@attrs.frozen
class CreatedContainer:
    """A container the factory made: its full id and its name (without the leading /)."""

    id: str
    name: str


class ContainerFactory:
    """Creates containers for one test and removes them afterwards.

    Call it with an Engine API create body (merged over ``{"Image": <test image>, "Cmd":
    ["sleep", "3600"]}``); the container is started unless ``start=False``. Names are
    ``<prefix>-<name or counter>`` (``raw_name=True`` uses ``name`` as is, e.g. to test
    ``vsc-…`` names), and every container carries the label ``ds01.test.run=<prefix>``.
    """

    def __init__(self, engine: DockerAdapter, image: str, prefix: str):
        self.engine = engine
        self.image = image
        self.prefix = prefix
        self.created: list[CreatedContainer] = []
        self._serial = itertools.count(1)

    def __call__(
        self,
        body: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        raw_name: bool = False,
        start: bool = True,
    ) -> CreatedContainer:
        spec: dict[str, Any] = {"Image": self.image, "Cmd": ["sleep", "3600"]}
        spec.update(copy.deepcopy(dict(body or {})))
        spec["Labels"] = {**(spec.get("Labels") or {}), RUN_LABEL: self.prefix}
        full_name = name if raw_name and name else f"{self.prefix}-{name or next(self._serial)}"
        container = CreatedContainer(self.engine.create_container(spec, name=full_name), full_name)
        self.created.append(container)
        if start:
            self.engine.start(container.id)
        return container

    def cleanup(self) -> None:
        """Force-remove what this factory made; what is already gone is fine."""
        for container in reversed(self.created):
            remove_quietly(self.engine, container.id)
        self.created.clear()


def remove_quietly(engine: DockerAdapter, container: str) -> None:
    try:
        engine.remove(container, force=True)
    except DockerError as err:
        if err.status != 404:
            raise


@pytest.fixture(scope="session")
def container_prefix(docker_engine: DockerAdapter) -> Iterator[str]:
    """This test run's container name prefix; leftovers carrying it are removed at the end."""
    prefix = f"ds01-test-{os.getpid()}-{secrets.token_hex(3)}"
    yield prefix
    for summary in docker_engine.list_containers(all=True):
        names = [n.lstrip("/") for n in summary.get("Names") or ()]
        labels = summary.get("Labels") or {}
        if labels.get(RUN_LABEL) == prefix or any(n.startswith(prefix) for n in names):
            remove_quietly(docker_engine, summary["Id"])


@pytest.fixture
def container_factory(
    docker_engine: DockerAdapter, test_image: str, container_prefix: str
) -> Iterator[ContainerFactory]:
    """``container_factory(body=None, *, name=None, raw_name=False, start=True)`` ->
    :class:`CreatedContainer`; everything it made is force-removed after the test."""
    factory = ContainerFactory(docker_engine, test_image, container_prefix)
    yield factory
    factory.cleanup()


# -- configuration -----------------------------------------------------------------------------


CGROUP_FS = Path("/sys/fs/cgroup")


@pytest.fixture(scope="session")
def cgroup_test_root() -> Iterator[str]:
    """A cgroup root of this run's own (``ds01test_<hex>``) for containers created through the
    cgroups plugin, so tests never touch the host's real ``/ds01`` tree; removed at the end."""
    root = f"ds01test_{secrets.token_hex(4)}"
    yield root
    for controller in CGROUP_FS.glob("*"):
        base = controller / root
        if not base.is_dir():
            continue
        for directory in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[..., Path]:
    """``tmp_config(extra: dict | None = None) -> Path``: a ds01 YAML file in ``tmp_path``.

    State, logs and runtime files go under ``tmp_path`` (``state/``, ``log/``, ``run/``,
    created) and the GPU backend is the simulated one, so nothing touches the host; ``extra``
    is deep-merged over that. Each call writes a new file (``ds01.yaml``, ``ds01-2.yaml`` …).
    """
    written: list[Path] = []

    def make(extra: Mapping[str, Any] | None = None) -> Path:
        name = "ds01.yaml" if not written else f"ds01-{len(written) + 1}.yaml"
        path = write_config(tmp_path, extra, name)
        written.append(path)
        return path

    return make


# -- real Unix users ----------------------------------------------------------------------------


@attrs.frozen
class UnixUser:
    name: str
    uid: int
    gid: int
    home: str


TEST_USERS = ("ds01ta", "ds01tb", "ds01tc")


@pytest.fixture(scope="session")
def unix_users() -> Iterator[dict[str, UnixUser]]:
    """Real users (``ds01ta``, ``ds01tb``: plain users; ``ds01tc``: the admin group's member,
    see :func:`admin_member`) with homes under /home, created for the run and removed
    afterwards. Needs root (CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("integration tests need root to create test users")
        pytest.skip("needs root to create test users")
    created = []
    users = {}
    for name in TEST_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/sh", name],
                check=True,
                capture_output=True,
            )
            created.append(name)
            entry = pwd.getpwnam(name)
        os.makedirs(entry.pw_dir, exist_ok=True)
        os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
        users[name] = UnixUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    yield users
    for name in created:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(f"/home/{name}", ignore_errors=True)


ADMIN_GROUP = "ds01-admin"


@pytest.fixture(scope="session")
def admin_member(unix_users: dict[str, UnixUser]) -> Iterator[UnixUser]:
    """``ds01tc`` as a member of the admin group (``gateway.admin_group``, ``ds01-admin``):
    an admin who is not root (the plain users ds01ta and ds01tb never are). The group is
    created if the host lacks it, and the membership (and a group made here) removed
    afterwards."""
    import grp

    user = unix_users["ds01tc"]
    try:
        grp.getgrnam(ADMIN_GROUP)
        made_group = False
    except KeyError:
        subprocess.run(["groupadd", ADMIN_GROUP], check=True, capture_output=True)
        made_group = True
    subprocess.run(["gpasswd", "-a", user.name, ADMIN_GROUP], check=True, capture_output=True)
    yield user
    subprocess.run(["gpasswd", "-d", user.name, ADMIN_GROUP], capture_output=True)
    if made_group:
        subprocess.run(["groupdel", ADMIN_GROUP], capture_output=True)


@pytest.fixture(scope="session")
def user_cli() -> Iterator[Path]:
    """A ``ds01`` (and ``ds01-api``) that any user can run: see tests/helpers/user_cli.py."""
    from tests.helpers.user_cli import build_user_cli

    root = build_user_cli()
    yield root
    shutil.rmtree(root, ignore_errors=True)
