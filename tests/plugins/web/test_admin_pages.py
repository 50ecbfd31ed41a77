"""The admin panel in a real headless Chromium against the real app, real users and the real
engine: ds01tc (an admin) sees ds01ta's container holding a GPU slot on the allocation map,
with how long; adds an override through the page that ``ds01 config show --user ds01ta`` then
reports, and ends it; browses users, their limits and the audit log page by page. An admin whose
password is stale is sent to /reauth and nothing is changed. Every page passes axe (no serious
or critical violation), fits a 360 px phone and breaks no CSP rule."""

from __future__ import annotations

import grp
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from ds01_core.domain.model import Event, GpuRequest
from ds01_core.domain.state.gpu_queue import Waiter
from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.api_socket.server import ThreadedRuntime
from ds01_core.transports.cli import cli
from tests.helpers.browser import axe_violations, chromium, describe_violations, phone_context
from tests.helpers.config import write_config
from tests.plugins.web.web_env import events, serving, session_for, signed_in_context

pytestmark = pytest.mark.integration

#: records every CSP violation the page reports (init scripts are not subject to the policy)
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""
#: the admin group of these tests' configuration: a group of their own with ds01tc in it, since
#: other test sessions on the same host add ds01tc to ds01-admin and take it out again
ADMIN_GROUP = "ds01-webadm"
PAGES = ("/admin", "/admin/users", "/admin/users/ds01ta", "/admin/overrides", "/admin/audit")


@contextmanager
def admin_group_with(user: str) -> Iterator[str]:
    """:data:`ADMIN_GROUP` with ``user`` in it (the group made if missing, and removed after)."""
    try:
        grp.getgrnam(ADMIN_GROUP)
        made = False
    except KeyError:
        subprocess.run(["groupadd", ADMIN_GROUP], check=True, capture_output=True)
        made = True
    subprocess.run(["gpasswd", "-a", user, ADMIN_GROUP], check=True, capture_output=True)
    try:
        yield ADMIN_GROUP
    finally:
        subprocess.run(["gpasswd", "-d", user, ADMIN_GROUP], capture_output=True)
        if made:
            subprocess.run(["groupdel", ADMIN_GROUP], capture_output=True)


@pytest.fixture(autouse=True)
def _still_admin(unix_users):
    """ds01tc in :data:`ADMIN_GROUP` again before each test: another session's ``userdel`` of
    a test user it made takes it out of every group (seen with five sessions on one host)."""
    if os.geteuid() == 0 and grp_exists(ADMIN_GROUP):
        subprocess.run(["gpasswd", "-a", "ds01tc", ADMIN_GROUP], capture_output=True)


def grp_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def admin_config(base: Path) -> Path:
    return write_config(
        base, {"gateway": {"admin_group": ADMIN_GROUP}, "plugins": {"web": {"rate_limit": 1000}}}
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, docker_engine, test_image):
    base = tmp_path_factory.mktemp("webadmin")
    base.chmod(0o755)
    config = admin_config(base)
    alice, admin = unix_users["ds01ta"], unix_users["ds01tc"]
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    tag = os.getpid()
    box = f"webadm-{tag}"
    as_alice = ServiceContext(runtime, Caller.from_uid(alice.uid, ADMIN_GROUP))
    made = call(
        as_alice,
        "containers.create",
        name=box,
        image=test_image,
        gpus=1,
        command=["sleep", "600"],
    )
    call(as_alice, "containers.start", name=box)
    try:
        with admin_group_with(admin.name), serving(runtime) as url:
            yield {
                "runtime": runtime,
                "config": config,
                "url": url,
                "box": box,
                "slot": made["slots"][0],
                "alice": alice,
                "admin": admin,
            }
    finally:
        for summary in docker_engine.list_containers(all=True):
            if f"/{box}" in (summary.get("Names") or []):
                docker_engine.remove(summary["Id"], force=True)


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_as(browser: Any, world: dict[str, Any], user: Any, **options: Any) -> Any:
    secret = session_for(world["runtime"], user.name, user.uid)
    context = signed_in_context(browser, world["url"], secret, **options)
    context.add_init_script(CSP_PROBE)
    return context


def watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def opened(page: Any, url: str) -> None:
    """``url`` loaded as an admin's page (a 403 here means ds01tc is no longer in ds01-admin:
    another test session on this host removed the membership)."""
    answer = page.goto(url)
    assert answer.status == 200, f"{url}: {answer.status} {page.locator('main').inner_text()}"


def checked(page: Any, errors: list[str]) -> None:
    """No CSP violation, no console error, no serious or critical axe violation."""
    assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
    assert errors == [], errors
    found = axe_violations(page)
    assert found == [], f"{page.url}:\n{describe_violations(found)}"


def test_the_admin_sees_the_allocation_map_with_the_holder_and_how_long(browser, world):
    context = open_as(browser, world, world["admin"], color_scheme="dark")  # axe: dark colours
    page = context.new_page()
    errors = watch(page)
    waiter = Waiter(world["runtime"], GpuRequest(user="ds01tb", container="queued-box"))
    try:
        answer = page.goto(world["url"] + "/admin")
    finally:
        waiter.leave("gave_up")
    assert answer.status == 200
    assert page.locator("h1").text_content() == "Admin panel"
    held = page.locator(".slot-held")
    assert held.count() == 1, page.content()
    text = " ".join(held.first.inner_text().split())
    assert world["slot"] in text and "Held by ds01ta" in text and world["box"] in text
    assert re.search(r"for \d+ (s|min)\b", text), text  # held for seconds (or a minute) so far
    since = held.first.locator("time").get_attribute("datetime")
    assert since and since.endswith("Z")
    tiles = {
        " ".join(t.locator("dt").inner_text().split()): " ".join(
            t.locator("dd").inner_text().split()
        )
        for t in page.locator(".tile").all()
    }
    assert tiles["GPUs in use"].startswith("1 of 8"), tiles
    assert "slots 1 of 19" in tiles["GPUs in use"], tiles
    assert int(tiles["Users active"].split()[0]) >= 1
    assert tiles["Requests waiting"].startswith("1")
    queued = page.locator("section[aria-labelledby='queue-heading'] tbody tr")
    assert queued.count() == 1 and "ds01tb" in queued.inner_text()
    assert "queued-box" in queued.inner_text()
    alerts = page.locator("section[aria-labelledby='alerts-heading']").inner_text()
    assert "No GPU health problems" in alerts and "Failed checks (ds01 admin doctor)" in alerts
    assert "Every check passed." in alerts or "Fix:" in alerts
    assert "No Alertmanager notifications in the last 24h" in alerts
    # the live part is the same fragment htmx polls
    live = page.request.get(world["url"] + "/admin/live", headers={"HX-Request": "true"})
    assert live.status == 200 and "Held by <strong>ds01ta</strong>" in live.text()
    assert page.locator("#admin-live[hx-trigger='every 20s']").count() == 1
    checked(page, errors)
    context.close()


def test_every_admin_page_passes_axe_and_fits_a_phone(browser, world):
    secret = session_for(world["runtime"], "ds01tc", world["admin"].uid)
    with phone_context(browser) as context:
        from ds01_web.sessions import COOKIE

        context.add_cookies(
            [{"name": COOKIE, "value": secret, "url": world["url"], "httpOnly": True,
              "secure": True, "sameSite": "Strict"}]
        )  # fmt: skip
        context.add_init_script(CSP_PROBE)
        page = context.new_page()
        errors = watch(page)
        for path in PAGES:
            answer = page.goto(world["url"] + path)
            assert answer.status == 200, (path, answer.status)
            width = page.evaluate("document.body.scrollWidth")
            assert width <= 360, f"{path} scrolls sideways on a phone: {width} px"
            checked(page, errors)


def config_show(world: dict[str, Any], user: str) -> str:
    shown = CliRunner().invoke(
        cli, ["--config", str(world["config"]), "config", "show", "--user", user]
    )
    assert shown.exit_code == 0, shown.output
    return shown.output


def test_an_override_added_on_the_page_is_what_config_show_reports(browser, world):
    assert "max_containers_per_user" in config_show(world, "ds01ta")
    context = open_as(browser, world, world["admin"])
    page = context.new_page()
    errors = watch(page)
    opened(page, world["url"] + "/admin/overrides")
    page.fill("#override-user", "ds01ta")
    page.select_option("#override-key", "max_containers_per_user")
    page.fill("#override-value", "7")
    page.fill("#override-reason", "thesis deadline (web test)")
    page.fill("#override-expires", "2099-01-31T12:00")
    with page.expect_navigation():
        page.click("text=Add override")
    where = urlsplit(page.url)
    assert where.path == "/admin/overrides" and "added" in parse_qs(where.query), page.url
    assert "added for ds01ta" in page.locator(".notice-ok").inner_text()
    row = page.locator("tbody tr", has_text="thesis deadline (web test)")
    assert row.count() == 1 and "max_containers_per_user=7" in row.inner_text()
    checked(page, errors)

    shown = config_show(world, "ds01ta")
    line = next(x for x in shown.splitlines() if x.startswith("max_containers_per_user"))
    assert " 7 " in line and "override until 2099-01-31" in line, shown
    assert "thesis deadline (web test)" in shown and "approved by ds01tc" in shown
    made = [e for e in events(world["runtime"], "override.set") if e["user"] == "ds01ta"]
    assert made and made[-1]["details"]["by"] == "ds01tc"
    audited = events(world["runtime"], "web.request")
    assert any(
        e["user"] == "ds01tc" and e["details"]["endpoint"] == "POST /admin/overrides"
        and e["details"]["status"] == 303
        for e in audited
    )  # fmt: skip

    # and it ends from the page: config show no longer reports it
    with page.expect_navigation():
        row.locator("button").click()
    assert "ended" in page.locator(".notice-ok").inner_text()
    assert page.locator("tbody tr", has_text="thesis deadline (web test)").count() == 0
    line = next(
        x
        for x in config_show(world, "ds01ta").splitlines()
        if x.startswith("max_containers_per_user")
    )
    assert "override" not in line, line
    context.close()


def test_a_mistake_in_the_form_is_said_and_nothing_is_made(browser, world):
    context = open_as(browser, world, world["admin"])
    page = context.new_page()
    opened(page, world["url"] + "/admin/overrides")
    page.fill("#override-user", "ds01ta")
    page.select_option("#override-key", "max_gpu_equivalents")
    page.fill("#override-value", "lots")
    page.fill("#override-reason", "a typo (web test)")
    with page.expect_navigation():
        page.click("text=Add override")
    alert = page.locator(".notice-error").inner_text()
    assert "max_gpu_equivalents" in alert and "Traceback" not in page.content()
    assert page.input_value("#override-reason") == "a typo (web test)"  # kept for a retry
    assert "a typo" not in config_show(world, "ds01ta")
    context.close()


def test_a_stale_password_goes_to_reauth_and_changes_nothing(browser, world):
    from ds01_web.app import settings_of
    from ds01_web.sessions import SessionStore

    runtime = world["runtime"]
    admin = world["admin"]
    secret = session_for(runtime, admin.name, admin.uid)
    store = SessionStore.under(
        runtime.config.paths.state_dir, float(settings_of(runtime).session_lifetime)
    )
    store.reauthenticated(secret, time.time() - 3600)  # typed an hour ago: the window is 15 min
    context = signed_in_context(browser, world["url"], secret)
    page = context.new_page()
    assert page.goto(world["url"] + "/admin/overrides").status == 200  # reading needs no re-auth
    page.fill("#override-user", "ds01ta")
    page.fill("#override-value", "3")
    page.fill("#override-reason", "stale password (web test)")
    with page.expect_navigation():
        page.click("text=Add override")
    where = urlsplit(page.url)
    assert where.path == "/reauth" and parse_qs(where.query)["next"] == ["/admin/overrides"]
    root = ServiceContext(runtime, Caller("root", 0, admin=True))
    listed = call(root, "admin.override.list", user="ds01ta", all=True)
    assert not any(o["reason"] == "stale password (web test)" for o in listed)
    assert "stale password" not in config_show(world, "ds01ta")
    context.close()


def test_users_and_their_limits(browser, world):
    context = open_as(browser, world, world["admin"])
    page = context.new_page()
    errors = watch(page)
    opened(page, world["url"] + "/admin/users")
    row = page.locator("tbody tr", has=page.locator("th", has_text="ds01ta"))
    assert row.count() == 1
    cells = " ".join(row.inner_text().split())
    assert world["slot"] in cells and re.search(r"\d+ running of \d+", cells), cells
    assert re.search(r"\d+ (s|min) ago", cells), cells
    with page.expect_navigation():
        row.locator("a").click()
    assert urlsplit(page.url).path == "/admin/users/ds01ta"
    assert page.locator("h1").inner_text() == "Limits of ds01ta"
    limit = page.locator("tbody tr", has=page.locator("th", has_text="max_gpu_equivalents"))
    assert "built-in" in limit.inner_text() or "defaults" in limit.inner_text()
    checked(page, errors)
    context.close()


def test_the_audit_log_filters_and_pages_back_without_repeats(browser, world):
    runtime = world["runtime"]
    for n in range(30):
        runtime.events.append(Event("test.admin_marker", "ds01tb", "test", {"n": n}))
    context = open_as(browser, world, world["admin"])
    page = context.new_page()
    errors = watch(page)
    opened(page, world["url"] + "/admin/audit")
    page.fill("#audit-type", "test.admin_marker")
    page.fill("#audit-user", "ds01tb")
    page.select_option("#audit-limit", "25")
    with page.expect_navigation():
        page.click("text=Show")
    rows = page.locator(".audit-table tbody tr")
    assert rows.count() == 25
    first = [int(re.search(r'"n": (\d+)', r).group(1)) for r in rows.all_inner_texts()]
    assert first == list(range(29, 4, -1))  # newest first
    checked(page, errors)
    with page.expect_navigation():
        page.click("text=Older events")
    older = [
        int(re.search(r'"n": (\d+)', r).group(1))
        for r in page.locator(".audit-table tbody tr").all_inner_texts()
    ]
    assert older == [4, 3, 2, 1, 0]
    assert page.locator("text=Older events").count() == 0
    assert page.locator("text=Newest events").count() == 1
    # a filter the service refuses is said, not a traceback
    page.goto(world["url"] + "/admin/audit?since=yesterday-ish")
    assert "since" in page.locator(".notice-error").inner_text()
    context.close()
