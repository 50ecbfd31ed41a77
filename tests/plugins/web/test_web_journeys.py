"""The issue's journeys end to end, in a real headless Chromium, against everything real: the
shipped ``ds01-web`` (its own process, as its unit runs it), ``ds01d``, ``ds01-gateway``,
``ds01-api``, the Docker engine, and sign-in through the page's own form checked by PAM against
real accounts.

- A user signs in, sees only their containers, creates one through the wizard (the gateway then
  shows it to her ``docker ps`` and not to bob's; ds01d records its start), and stops it.
- An admin (a member of the admin group, not root) signs in, sees the allocation map with the
  user's GPU container, adds an override that ``ds01 config show --user`` — run by the admin
  through ``ds01-api`` — then reports.

With ``DS01_WEB_SCREENSHOTS=<dir>`` the pages are also saved there as PNGs (docs/web/ holds
the ones the docs show, with test_usage_page_records.py's usage and carbon pages:
``DS01_WEB_SCREENSHOTS=docs/web tox -e test -- tests/plugins/web/test_web_journeys.py
tests/plugins/web/test_usage_page_records.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import axe_violations, chromium, describe_violations
from tests.helpers.config import write_config
from tests.helpers.gateway import as_user, running_gateway
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.web.login_env import PASSWORDS, need_root, pam_service, passwords

pytestmark = pytest.mark.integration

SHOTS = os.environ.get("DS01_WEB_SCREENSHOTS")
DESKTOP = {"width": 1280, "height": 900}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A ds01 program in its own process, its output in a log file beside the config."""

    def __init__(self, name: str, code: str, args: list[str], log: Path):
        self.name = name
        self.log = log
        self.out = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=self.out, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        self.out.flush()
        return self.log.read_text()[-4000:]

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.output()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.out.close()


def wait_http(url: str, web: Process, seconds: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        web.alive()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer:\n{web.output()}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, admin_member, docker_engine, test_image, user_cli):
    need_root()
    base = tmp_path_factory.mktemp("journeys")
    base.chmod(0o755)
    repository, tag = test_image.rsplit(":", 1)
    with pam_service() as service, passwords():
        config = write_config(
            base,
            {
                "limits": {"defaults": {"max_gpu_equivalents": 2, "max_containers_per_user": 10}},
                "allocation": {"gpu_hold_after_stop": "0s", "stop_timeout": "2s"},
                "lifecycle": {"interval": "30s"},
                "plugins": {
                    "web": {"login": {"methods": ["pam"], "pam_service": service}},
                    "projects": {
                        "catalogue": {
                            "busybox": {
                                "image": repository,
                                "tag": tag,
                                "description": "a small shell image",
                            }
                        }
                    },
                },
            },
        )
        config.chmod(0o644)
        port = free_port()
        web = Process(
            "ds01-web",
            "from ds01_web.main import main; main()",
            ["--config", str(config), "--port", str(port)],
            base / "ds01-web.log",
        )
        daemon = Process(
            "ds01d",
            "from ds01_core.cycle.daemon import main; main()",
            ["--config", str(config)],
            base / "ds01d.log",
        )
        names: list[str] = []
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/login", web)
            with running_gateway(config) as gateway, running_api(config) as api:
                yield {
                    "url": url,
                    "config": config,
                    "gateway": gateway,
                    "api": api,
                    "web": web,
                    "daemon": daemon,
                    "names": names,
                    "tag": f"wj{os.getpid()}",
                    "users": unix_users,
                    "admin": admin_member,
                    "cli": user_cli,
                    "image": test_image,
                }
        finally:
            web.stop()
            daemon.stop()
            for name in names:
                docker_engine.remove(name, force=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def ds01(world: dict[str, Any], user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ds01 ARGS`` as ``user`` through the real ``ds01-api``."""
    return run_as(
        world["users"][user], world["cli"], list(args), env={"DS01_API_SOCKET": world["api"]}
    )


def docker_ps(world: dict[str, Any], user: str) -> str:
    """``docker ps -a`` as ``user`` through the real gateway."""
    done = as_user(world["users"][user], world["gateway"], "docker", "ps", "-a")
    assert done.returncode == 0, done.stderr
    return done.stdout


def shot(page: Any, name: str, full_page: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


def sign_in(browser: Any, world: dict[str, Any], user: str, start: str) -> tuple[Any, Any]:
    """A fresh browser that opens ``start``, is sent to the sign-in form, and signs in there."""
    context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce")  # no animation
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(world["url"] + start)
    assert "/login" in page.url, page.url
    shot(page, "sign-in")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(world["url"] + start) + r"$"))
    cookie = next(c for c in context.cookies() if c["name"] == "ds01_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    page.errors = errors
    return context, page


def accessible(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], f"{page.url}:\n{describe_violations(found)}"
    assert page.errors == [], page.errors


def card(page: Any, name: str) -> Any:
    return page.locator(f'li.container-card[data-container="{name}"]')


def test_a_user_signs_in_creates_a_container_in_the_wizard_and_stops_it(browser, world):
    tag, names = world["tag"], world["names"]
    bobs, mine = f"{tag}-bob", f"{tag}-alice"
    names += [bobs, mine]
    made = ds01(world, "ds01tb", "container", "create", bobs, "--image", world["image"],
                "--cpu-only")  # fmt: skip
    assert made.returncode == 0, made.stderr

    context, page = sign_in(browser, world, "ds01ta", "/")
    assert "Signed in as ds01ta" in page.locator("header").inner_text()
    assert card(page, bobs).count() == 0 and bobs not in page.content()
    accessible(page)

    page.goto(world["url"] + "/containers/new")
    page.get_by_label("Container name").fill(mine)
    page.get_by_label("Project").fill("thesis")
    page.get_by_label(re.compile(r"^busybox")).check()
    page.get_by_label("No GPU (CPU only)").check()
    shot(page, "wizard")
    accessible(page)
    page.get_by_role("button", name="Review").click()
    assert "Review the new container" in page.locator("main").inner_text()
    page.get_by_role("button", name=f"Create {mine}").click()
    page.wait_for_url(re.compile(r"/\?done=started"))
    page.wait_for_selector(f'li.container-card[data-container="{mine}"][data-state="running"]')
    shot(page, "dashboard")

    # one set of rules on every transport: the gateway shows it to her, not to bob
    assert mine in docker_ps(world, "ds01ta") and bobs not in docker_ps(world, "ds01ta")
    assert mine not in docker_ps(world, "ds01tb")
    # and ds01d saw it start (Docker's events become audit events)
    log = Path(str(world["config"].parent / "log" / "events.jsonl"))
    deadline = time.monotonic() + 30
    while not any(
        e["event_type"] == "container.started" and mine in json.dumps(e)
        for e in map(json.loads, log.read_text().splitlines())
    ):
        world["daemon"].alive()
        assert time.monotonic() < deadline, world["daemon"].output()
        time.sleep(0.2)

    card(page, mine).get_by_role("button", name=re.compile(r"^Stop")).click()
    page.wait_for_selector(
        f'li.container-card[data-container="{mine}"][data-state="exited"]', timeout=30000
    )
    seen = as_user(world["users"]["ds01ta"], world["gateway"], "docker", "inspect",
                   "--format", "{{.State.Status}}", mine)  # fmt: skip
    assert seen.stdout.strip() == "exited", seen
    assert page.errors == [], page.errors
    context.close()


def test_an_admin_sees_the_map_and_adds_an_override_config_show_reports(browser, world):
    gpu_box = f"{world['tag']}-gpu"
    world["names"].append(gpu_box)
    made = ds01(world, "ds01ta", "container", "create", gpu_box, "--image", world["image"],
                "--gpus", "1")  # fmt: skip
    assert made.returncode == 0, made.stderr

    context, page = sign_in(browser, world, "ds01tc", "/admin")
    allocation_map = page.locator("main").inner_text()
    assert gpu_box in allocation_map and "ds01ta" in allocation_map, allocation_map
    shot(page, "admin")
    accessible(page)

    page.goto(world["url"] + "/admin/overrides")
    page.fill("#override-user", "ds01ta")
    page.select_option("#override-key", "max_gpu_equivalents")
    page.fill("#override-value", "3")
    page.fill("#override-reason", "thesis deadline (journey test)")
    page.fill("#override-expires", "2099-01-31T12:00")
    with page.expect_navigation():
        page.get_by_role("button", name="Add override").click()
    assert "added for ds01ta" in page.locator(".notice-ok").inner_text()
    shot(page, "admin-overrides")

    shown = ds01(world, "ds01tc", "config", "show", "--user", "ds01ta")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("max_gpu_equivalents"))
    assert " 3" in line and "override until 2099-01-31" in line, shown.stdout
    # the plain user may not see another user's settings the same way
    refused = ds01(world, "ds01tb", "config", "show", "--user", "ds01ta")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr

    page.goto(world["url"] + "/admin/audit")
    shot(page, "admin-audit", full_page=False)
    assert page.errors == [], page.errors
    context.close()
