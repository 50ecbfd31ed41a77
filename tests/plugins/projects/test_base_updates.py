"""Base-update notices against a real registry on loopback (Debian's ``docker-registry``,
distribution's registry, with tags pushed by the real engine): a newer tag of the same family
is told to the admins once, an unreachable registry is reported once per outage, and the
anonymous bearer-token flow works against a token realm."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ds01_projects.base_updates import (
    BaseUpdateService,
    check,
    family,
    newer_tags,
    notice_text,
    read_state,
)
from ds01_projects.config import CatalogueEntry
from ds01_projects.registry import RegistryError, list_tags, parse_challenge, split_image
from tests.conftest import unavailable
from tests.plugins.projects.projects_fixture import TEST_IMAGE_REPO, TEST_IMAGE_TAG

CURRENT = "1.0.0-cuda12.1-runtime"
PUSHED = (CURRENT, "1.2.0-cuda12.1-runtime", "1.10.0-cuda12.1-runtime", "2.0.0-cuda12.1-devel")


def test_tag_families_compare_numbers_as_numbers() -> None:
    assert family("2.4.0-cuda12.1-cudnn9-runtime") == "#.#.#-cuda#.#-cudnn#-runtime"
    tags = [
        "2.4.0-cuda12.1-cudnn9-runtime",
        "2.5.1-cuda12.1-cudnn9-runtime",
        "2.10.0-cuda12.1-cudnn9-runtime",
        "2.9.0-cuda12.1-cudnn9-devel",
        "2.3.0-cuda12.1-cudnn9-runtime",
        "latest",
    ]
    assert newer_tags("2.4.0-cuda12.1-cudnn9-runtime", tags) == [
        "2.5.1-cuda12.1-cudnn9-runtime",
        "2.10.0-cuda12.1-cudnn9-runtime",
    ]
    assert newer_tags("24.01-py3", ["24.03-py3", "23.12-py3", "24.03-py3-igpu"]) == ["24.03-py3"]
    assert newer_tags("latest", tags) == []


def test_image_names_are_read_as_docker_reads_them() -> None:
    assert split_image("pytorch/pytorch") == ("registry-1.docker.io", "pytorch/pytorch")
    assert split_image("ubuntu") == ("registry-1.docker.io", "library/ubuntu")
    assert split_image("nvcr.io/nvidia/pytorch") == ("nvcr.io", "nvidia/pytorch")
    assert split_image("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "a/b")
    assert split_image("localhost/x") == ("localhost", "x")
    assert parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull"'
    ) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/ubuntu:pull",
    }
    assert parse_challenge('Basic realm="x"') == {}


def test_the_notice_says_what_to_change() -> None:
    entry = CatalogueEntry(image="pytorch/pytorch", tag="2.4.0-cuda12.1-cudnn9-runtime")
    subject, message = notice_text("pytorch", entry, ["2.5.0-x", "2.5.1-x"])
    assert subject == "Newer base image: pytorch 2.5.1-x"
    assert "is at tag 2.4.0-cuda12.1-cudnn9-runtime" in message
    assert "set plugins.projects.catalogue.pytorch.tag: 2.5.1-x" in message
    assert "(also newer: 2.5.0-x)" in message


# -- a real registry ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(docker_engine: Any, test_image: str) -> Iterator[str]:
    """``docker-registry`` on a free loopback port with the test image pushed under the
    tags of :data:`PUSHED` (as ``setup/bb``); yields ``127.0.0.1:PORT``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (bash scripts/ci/setup-registry.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="setup-registry-"))
    port = _free_port()
    (workdir / "config.yml").write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "log:\n  level: error\n"
    )
    proc = subprocess.Popen(
        [str(binary), "serve", str(workdir / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not answer on its port")
        for tag in PUSHED:
            push(address, tag)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def push(address: str, tag: str) -> None:
    ref = f"{address}/setup/bb:{tag}"
    subprocess.run(
        ["docker", "tag", f"{TEST_IMAGE_REPO}:{TEST_IMAGE_TAG}", ref],
        check=True,
        capture_output=True,
    )
    try:
        done = subprocess.run(["docker", "push", ref], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    finally:
        subprocess.run(["docker", "rmi", ref], capture_output=True)


@pytest.fixture
def make_runtime(tmp_config: Any) -> Iterator[Any]:
    from ds01_core.framework.runtime import load_runtime

    made: list[Any] = []

    def make(catalogue: dict[str, Any], **updates: Any) -> Any:
        section = {
            "catalogue": catalogue,
            "base_updates": {"timeout": "5s", "notify_users": ["ds01tc"], **updates},
        }
        runtime = load_runtime(str(tmp_config({"plugins": {"projects": section}})))
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.state.close()


def _events(runtime: Any, kind: str) -> list[dict[str, Any]]:
    path = Path(runtime.config.paths.event_log_path)
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if r["event_type"] == kind]


def _cfg(runtime: Any) -> Any:
    return runtime.plugin_config("projects")


@pytest.mark.integration
def test_a_newer_tag_is_told_once(registry: str, make_runtime: Any) -> None:
    runtime = make_runtime(
        {"bb": {"image": f"{registry}/setup/bb", "tag": CURRENT}},
        insecure_registries=[registry],
    )
    state = check(runtime, _cfg(runtime))
    assert state["bases"]["bb"] == {
        "image": f"{registry}/setup/bb",
        "tag": CURRENT,
        "newer": ["1.2.0-cuda12.1-runtime", "1.10.0-cuda12.1-runtime"],
        "newest": "1.10.0-cuda12.1-runtime",
    }
    (event,) = _events(runtime, "projects.base_update")
    assert event["details"]["base"] == "bb" and event["details"]["told"] == ["ds01tc"]
    assert event["details"]["current"] == CURRENT
    assert event["details"]["newest"] == "1.10.0-cuda12.1-runtime"
    (notice,) = _events(runtime, "notice.recorded")
    assert notice["user"] == "ds01tc"
    assert notice["details"]["subject"] == "Newer base image: bb 1.10.0-cuda12.1-runtime"
    assert (
        "plugins.projects.catalogue.bb.tag: 1.10.0-cuda12.1-runtime" in notice["details"]["message"]
    )
    # asked again: nothing new, nobody told twice
    check(runtime, _cfg(runtime))
    assert len(_events(runtime, "projects.base_update")) == 1
    # a newer one still: told once more
    push(registry, "1.11.0-cuda12.1-runtime")
    assert check(runtime, _cfg(runtime))["bases"]["bb"]["newest"] == "1.11.0-cuda12.1-runtime"
    assert [e["details"]["newest"] for e in _events(runtime, "projects.base_update")] == [
        "1.10.0-cuda12.1-runtime",
        "1.11.0-cuda12.1-runtime",
    ]
    stored = json.loads(
        (Path(runtime.config.paths.state_dir) / "projects-base-updates.json").read_text()
    )
    assert stored["told"] == {f"{registry}/setup/bb:{CURRENT}": "1.11.0-cuda12.1-runtime"}


@pytest.mark.integration
def test_https_is_the_default(registry: str, make_runtime: Any) -> None:
    runtime = make_runtime({"bb": {"image": f"{registry}/setup/bb", "tag": CURRENT}})
    state = check(runtime, _cfg(runtime))
    assert "cannot reach" in state["bases"]["bb"]["error"]
    assert _events(runtime, "projects.base_update") == []


@pytest.mark.integration
def test_an_outage_is_reported_once(registry: str, make_runtime: Any) -> None:
    down = f"127.0.0.1:{_free_port()}"
    catalogue = {
        "bb": {"image": f"{registry}/setup/bb", "tag": CURRENT},
        "gone": {"image": f"{down}/setup/gone", "tag": "1.0"},
    }
    runtime = make_runtime(catalogue, insecure_registries=[registry, down])
    for _ in range(3):
        state = check(runtime, _cfg(runtime))
    assert "cannot reach 127.0.0.1" in state["bases"]["gone"]["error"]
    assert state["bases"]["bb"]["newest"]  # one registry down costs only its bases
    # an unknown repository on a registry that answers: its error, in the registry's words
    missing = make_runtime(
        {"nope": {"image": f"{registry}/setup/nope", "tag": "1.0"}}, insecure_registries=[registry]
    )
    error = check(missing, _cfg(missing))["bases"]["nope"]["error"]
    assert error.startswith(f"{registry} answered 404 for setup/nope's tags: ")
    failures = _events(runtime, "projects.base_check_failed")
    (failed,) = [e for e in failures if e["details"]["base"] == "gone"]
    assert failed["details"]["registry"] == down
    assert list(state["outages"]) == ["gone"]


@pytest.mark.integration
def test_the_daemon_service_checks_when_due(registry: str, make_runtime: Any) -> None:
    runtime = make_runtime(
        {"bb": {"image": f"{registry}/setup/bb", "tag": CURRENT}},
        insecure_registries=[registry],
        interval="1h",
    )
    service = BaseUpdateService(runtime, _cfg(runtime))
    service.start()
    try:
        for _ in range(100):
            if read_state(runtime).get("bases"):
                break
            time.sleep(0.1)
    finally:
        started = time.monotonic()
        service.stop()
        assert time.monotonic() - started < 2  # the wait ends at once
    assert read_state(runtime)["bases"]["bb"]["newest"]
    checked = read_state(runtime)["checked_at"]
    # not due again for an hour: a new service does not ask
    again = BaseUpdateService(runtime, _cfg(runtime))
    again.start()
    time.sleep(0.5)
    again.stop()
    assert read_state(runtime)["checked_at"] == checked
    assert len(_events(runtime, "projects.base_update")) == 1


# -- the anonymous token flow ---------------------------------------------------------------------


class _TokenRegistry(BaseHTTPRequestHandler):
    """A registry that wants a bearer token from its realm, with two pages of tags."""

    token = "anon-token-1"
    seen: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        self.seen.append(self.path)
        if self.path.startswith("/token?"):
            ok = "service=reg" in self.path and "scope=repository%3Anvidia%2Fx%3Apull" in self.path
            self._send(200 if ok else 400, {"token": self.token} if ok else {})
            return
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            challenge = (
                f'Bearer realm="http://127.0.0.1:{port}/token",service="reg",'
                'scope="repository:nvidia/x:pull"'
            )
            self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
            return
        if "last=" in self.path:
            self._send(200, {"name": "nvidia/x", "tags": ["24.03-py3"]})
        else:
            link = '</v2/nvidia/x/tags/list?n=1000&last=24.01-py3>; rel="next"'
            self._send(200, {"name": "nvidia/x", "tags": ["24.01-py3"]}, {"Link": link})


def test_the_anonymous_bearer_token_flow() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        assert list_tags(f"{address}/nvidia/x", timeout=5, insecure=[address]) == [
            "24.01-py3",
            "24.03-py3",
        ]
        assert any(p.startswith("/token?") for p in _TokenRegistry.seen)
    finally:
        server.shutdown()
        server.server_close()


def test_not_waiting_past_the_timeout() -> None:
    with socket.socket() as listener:  # accepts, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        started = dt.datetime.now()
        with pytest.raises(RegistryError, match="cannot reach"):
            list_tags(f"{address}/a/b", timeout=1, insecure=[address])
        assert (dt.datetime.now() - started).total_seconds() < 3


@pytest.mark.integration
def test_admins_see_and_trigger_the_check_users_are_refused(
    registry: str, unix_users: Any, admin_member: Any, user_cli: Path
) -> None:
    from tests.plugins.projects.projects_fixture import ds01_as, projects_server

    extra = {
        "plugins": {
            "projects": {
                "catalogue": {"bb": {"image": f"{registry}/setup/bb", "tag": CURRENT}},
                "base_updates": {"insecure_registries": [registry], "timeout": "5s"},
            }
        }
    }
    newest = newer_tags(CURRENT, list_tags(f"{registry}/setup/bb", timeout=5, insecure=[registry]))
    with projects_server(extra) as server:
        before = ds01_as(admin_member, user_cli, server, "admin", "base-updates")
        assert before.returncode == 0, before.stderr
        assert "not checked yet" in before.stdout
        done = ds01_as(admin_member, user_cli, server, "admin", "base-updates", "--check")
        assert done.returncode == 0, done.stderr
        row = next(line for line in done.stdout.splitlines() if line.startswith("bb"))
        assert row.split()[1:] == [f"{registry}/setup/bb", CURRENT, newest[-1]]
        data = json.loads(
            ds01_as(admin_member, user_cli, server, "admin", "base-updates", "--json").stdout
        )
        assert data["bases"]["bb"]["newest"] == newest[-1]
        events = [json.loads(line) for line in server.events.read_text().splitlines()]
        told = [e for e in events if e["event_type"] == "projects.base_update"]
        assert len(told) == 1 and "ds01tc" in told[0]["details"]["told"]
        refused = ds01_as(unix_users["ds01ta"], user_cli, server, "admin", "base-updates")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "admin" in refused.stderr


def test_ds01d_gets_the_service_when_there_is_something_to_check(make_runtime: Any) -> None:
    with_bases = make_runtime({"bb": {"image": "example.org/a/b", "tag": "1.0"}})
    services = list(with_bases.hooks.daemon_services(with_bases))
    assert [s.name for s in services if isinstance(s, BaseUpdateService)] == [
        "projects-base-updates"
    ]
    off = make_runtime({"bb": {"image": "example.org/a/b", "tag": "1.0"}}, enabled=False)
    assert not [s for s in off.hooks.daemon_services(off) if isinstance(s, BaseUpdateService)]
    empty = make_runtime({})
    assert not [s for s in empty.hooks.daemon_services(empty) if isinstance(s, BaseUpdateService)]


@pytest.mark.integration
def test_the_service_asks_again_every_interval(registry: str, make_runtime: Any) -> None:
    runtime = make_runtime(
        {"bb": {"image": f"{registry}/setup/bb", "tag": CURRENT}},
        insecure_registries=[registry],
        interval="1s",
    )
    service = BaseUpdateService(runtime, _cfg(runtime))
    service.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            if stamp := read_state(runtime).get("checked_at"):
                seen.add(stamp)
            time.sleep(0.1)
    finally:
        service.stop()
    assert len(seen) >= 2, seen
    assert len(_events(runtime, "projects.base_update")) == 1  # told once, asked twice
