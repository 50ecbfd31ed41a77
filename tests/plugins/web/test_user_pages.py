"""The user pages in real Chromium against the real app, real users (ds01ta, ds01tb) and the
real Docker engine: each user sees only their containers and cannot act on another's; start,
stop and remove work from the page; polling shows a change made elsewhere; the wizard creates
a container with the user's labels (and a refusal comes back into the form); the charts draw;
every page passes axe, fits a phone's width and breaks no rule of the page's CSP."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ds01_core.domain.model import utc_text
from tests.helpers.browser import axe_violations, chromium, describe_violations, phone_context
from tests.plugins.web.user_pages_world import World, user_world

pytestmark = pytest.mark.integration

PAGES = ["/", "/containers/new", "/usage", "/usage?period=year", "/carbon", "/jobs"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users, docker_engine, test_image) -> Iterator[World]:
    base = tmp_path_factory.mktemp("webuserpages")
    base.chmod(0o755)
    with user_world(base, test_image, docker_engine) as made:
        made.alice_gpu = made.box("ds01ta", "gpu", full_gpu=True)  # type: ignore[attr-defined]
        made.bob_box = made.box("ds01tb", "cpu")  # type: ignore[attr-defined]
        yield made


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


class Watched:
    """A signed-in page whose console errors (CSP violations among them) are collected."""

    def __init__(self, context: Any):
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def alice(world, browser) -> Iterator[Watched]:
    context = world.context(browser, "ds01ta")
    yield Watched(context)
    context.close()


def card(page: Any, name: str) -> Any:
    return page.locator(f'li.container-card[data-container="{name}"]')


def engine_state(docker_engine: Any, name: str) -> str | None:
    found = docker_engine.inspect_container(name)
    return None if found is None else found["State"]["Status"]


def test_a_user_sees_only_their_own_containers(world, alice, browser) -> None:
    page = alice.page
    page.goto(world.url + "/")
    mine = card(page, world.alice_gpu)
    assert mine.count() == 1
    text = mine.inner_text()
    assert "running" in text and world.image in text
    assert re.search(r"slot \d+, full GPU", text) and re.search(r"\d+ % busy", text), text
    assert card(page, world.bob_box).count() == 0 and world.bob_box not in page.content()
    quota = page.locator("#quota-meter")
    assert quota.get_attribute("max") == "2.0" and float(quota.get_attribute("value")) >= 1.0
    assert "of 2 GPU-equivalents in use" in page.locator("#quota").inner_text()
    assert "GPU-hours" in page.locator("#week").inner_text()
    activity = page.locator("#activity").inner_text()
    assert f"You created container {world.alice_gpu}" in activity, activity
    assert "Jobs" in page.locator("nav.site-nav").inner_text()
    assert alice.errors == []
    context = world.context(browser, "ds01tb")
    try:
        theirs = context.new_page()
        theirs.goto(world.url + "/")
        assert card(theirs, world.bob_box).count() == 1
        assert card(theirs, world.alice_gpu).count() == 0
    finally:
        context.close()


@pytest.mark.parametrize("verb", ["stop", "remove"])
def test_another_users_container_is_refused(world, alice, docker_engine, verb) -> None:
    page = alice.page
    page.goto(world.url + "/")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(
        f"{world.url}/containers/{world.bob_box}/{verb}",
        form={"csrf_token": token},
        headers={"Origin": world.url},
        max_redirects=0,
    )
    assert answer.status in (403, 404, 409), answer.status
    body = answer.text()
    refusal = page.locator("main").evaluate(
        "(m, html) => { m.innerHTML = html; return m.innerText }",
        body.split('<main id="main" tabindex="-1">')[1].split("</main>")[0],
    )
    assert f"no container '{world.bob_box}' of yours" in refusal, refusal
    assert "Traceback" not in body
    assert engine_state(docker_engine, world.bob_box) == "running"
    # and the confirmation step does not show it either
    shown = page.request.get(f"{world.url}/containers/{world.bob_box}/remove")
    assert shown.status == 404 and "you have no container" in shown.text()


def test_an_htmx_refusal_keeps_its_status_and_is_shown_in_place(world, alice) -> None:
    """htmx swaps refusals too (base.html's responseHandling), so the handler answers with the
    real status: the card list says why, and the audit log records 404, not 200."""
    page = alice.page
    page.goto(world.url + "/")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(
        f"{world.url}/containers/{world.bob_box}/stop",
        form={"csrf_token": token},
        headers={"Origin": world.url, "HX-Request": "true"},
        max_redirects=0,
    )
    assert answer.status == 404, answer.status
    assert f"no container &#39;{world.bob_box}&#39; of yours" in answer.text()
    with open(world.runtime.config.paths.event_log_path) as log:
        audit = [
            e
            for e in map(json.loads, log)
            if e["event_type"] == "web.request"
            and e["details"]["endpoint"] == f"POST /containers/{world.bob_box}/stop"
        ]
    assert audit and audit[-1]["details"]["status"] == 404, audit[-1:]
    # and in the page, the refusal is swapped into the cards (not dropped as an error)
    page.evaluate(
        """([name, token]) => htmx.ajax("POST", `/containers/${name}/stop`,
             {target: "#containers", swap: "outerHTML", values: {csrf_token: token}})""",
        [world.bob_box, token],
    )
    page.get_by_text(f"no container '{world.bob_box}' of yours").wait_for(timeout=10000)


def test_stop_start_and_remove_from_the_page(world, alice, docker_engine) -> None:
    name = world.box("ds01ta", "buttons")
    page = alice.page
    page.goto(world.url + "/")
    page.locator(f"#stop-{name}").click()
    expect_state(page, name, "exited", 30)
    assert engine_state(docker_engine, name) == "exited"
    assert f"Container {name} stopped." in page.locator("#containers").inner_text()
    page.locator(f"#start-{name}").click()
    expect_state(page, name, "running", 30)
    assert engine_state(docker_engine, name) == "running"
    page.locator(f"#remove-{name}").click()
    page.wait_for_url(f"**/containers/{name}/remove")
    assert f"Remove {name}?" in page.locator("h1").inner_text()
    page.get_by_role("button", name=f"Yes, remove {name}").click()
    page.wait_for_url(re.compile(r"/\?done=removed"))
    assert f"Container {name} was removed." in page.locator("main").inner_text()
    assert card(page, name).count() == 0
    assert docker_engine.inspect_container(name) is None
    assert alice.errors == []


def expect_state(page: Any, name: str, state: str, seconds: float) -> None:
    page.wait_for_selector(
        f'li.container-card[data-container="{name}"][data-state="{state}"]', timeout=seconds * 1000
    )


def test_polling_shows_a_container_stopped_elsewhere(world, alice) -> None:
    name = world.box("ds01ta", "poll")
    page = alice.page
    page.goto(world.url + "/")
    expect_state(page, name, "running", 5)
    world.op("ds01ta", "containers.stop", name=name, grace=0)
    started = time.monotonic()
    expect_state(page, name, "exited", 25)  # the cards poll every 10 s
    assert time.monotonic() - started < 25
    assert "exited" in card(page, name).inner_text()
    assert alice.errors == []


def test_the_wizard_creates_a_container(world, alice, docker_engine) -> None:
    name = f"wp{world.tag}-a-wizard"
    page = alice.page
    page.goto(world.url + "/containers/new")
    assert "Free now:" in page.locator("main").inner_text()
    page.get_by_label("Container name").fill(name)
    page.get_by_label("Project").fill("thesis")
    page.get_by_label(re.compile(r"^busybox")).check()
    page.get_by_label("No GPU (CPU only)").check()
    page.get_by_role("button", name="Review").click()
    review = page.locator("main").inner_text()
    assert "Review the new container" in review and name in review
    assert world.image in review and "no GPU (CPU only)" in review and "thesis" in review
    assert docker_engine.inspect_container(name) is None  # nothing made before Create
    page.get_by_role("button", name=f"Create {name}").click()
    page.wait_for_url(re.compile(r"/\?done=started"))
    assert card(page, name).count() == 1
    assert f"Container {name} started." in page.locator("main").inner_text()
    made = docker_engine.inspect_container(name)
    labels = made["Config"]["Labels"]
    assert labels["ds01.user"] == "ds01ta" and labels["ds01.origin"] == "ds01"
    assert "thesis" in labels.values()
    assert made["Config"]["Image"] == world.image and made["State"]["Status"] == "running"
    assert alice.errors == []


def test_a_refusal_comes_back_into_the_wizard(world, alice) -> None:
    page = alice.page
    page.goto(world.url + "/containers/new")
    page.get_by_role("button", name="Review").click()  # nothing filled in
    assert page.locator("#name").get_attribute("aria-invalid") == "true"
    assert "give the container a name" in page.locator("#name-error").inner_text()
    assert "choose an image" in page.locator("main").inner_text()
    # a name already taken: the service's refusal, with what to do, and the answers kept
    page.get_by_label("Container name").fill(world.alice_gpu)
    page.get_by_label(re.compile(r"^busybox")).check()
    page.get_by_role("button", name="Review").click()
    page.get_by_role("button", name=f"Create {world.alice_gpu}").click()
    alert = page.get_by_role("alert").inner_text()
    assert "The container was not created" in alert and "Choose another name" in alert, alert
    assert page.get_by_label("Container name").input_value() == world.alice_gpu
    assert "Traceback" not in page.content()


def test_usage_and_carbon_charts_draw_with_tables(world, alice) -> None:
    page = alice.page
    page.goto(world.url + "/usage?period=week")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('#usage-chart'))"
    )
    config = json.loads(page.locator("#usage-chart").get_attribute("data-chart"))
    labels = config["data"]["labels"]
    rows = page.locator("table tbody tr")
    assert rows.count() == len(labels) >= 1 and rows.first.locator("th").inner_text() == labels[0]
    assert page.locator('nav.tabs a[aria-current="page"]').inner_text() == "This week"
    page.goto(world.url + "/carbon")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('#forecast-chart'))"
    )
    text = page.locator("main").inner_text()
    assert re.search(r"\d+ g CO₂-eq/kWh now, from schedule", text), text
    assert "This week" in text and "All time" in text
    assert alice.errors == []


def test_jobs_page_says_slurm_is_not_configured(world, alice) -> None:
    page = alice.page
    page.goto(world.url + "/jobs")
    text = page.locator("#jobs").inner_text()
    assert "Slurm is not configured on this server" in text and "Traceback" not in text


@pytest.mark.parametrize("path", PAGES)
def test_every_page_passes_axe_and_fits_a_phone(world, browser, alice, path) -> None:
    page = alice.page
    page.goto(world.url + path)
    page.wait_for_load_state("networkidle")
    found = axe_violations(page)
    assert found == [], describe_violations(found)
    assert alice.errors == [], alice.errors
    with phone_context(browser) as phone:
        phone.add_cookies(alice.context.cookies())
        small = phone.new_page()
        small.goto(world.url + path)
        small.wait_for_load_state("networkidle")
        width = small.evaluate("() => [document.body.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{path} scrolls sideways on a phone: {width}"
        found = axe_violations(small)
        assert found == [], describe_violations(found)


def test_the_remove_step_passes_axe(world, alice) -> None:
    page = alice.page
    page.goto(f"{world.url}/containers/{world.alice_gpu}/remove")
    found = axe_violations(page)
    assert found == [], describe_violations(found)


def test_a_waiting_request_shows_its_position_and_estimate(world, alice) -> None:
    """A request waiting in the queue (a ticket held by this live process, as `ds01 container
    create --wait` holds one) after three were served in 1, 2 and 10 minutes."""
    from tests.core.test_gpu_queue_estimate import _ticket

    runtime, now = world.runtime, world.runtime.now()
    with runtime.state.transaction() as db:
        for minutes in (1, 2, 10):
            start = now - dt.timedelta(hours=1)
            _ticket(db, "ds01tb", start, start + dt.timedelta(minutes=minutes), "served")
        _ticket(db, "ds01ta", now - dt.timedelta(minutes=4), alive=True)
    try:
        page = alice.page
        page.goto(world.url + "/")
        text = page.locator("#queue").inner_text()
        assert "ds01ta-box waits for 1 GPU: number 1 of 1 in the queue" in text, text
        assert "expected wait: about 2m" in text, text
    finally:
        with runtime.state.transaction() as db:
            db.execute(
                "UPDATE gpu_queue SET left_at = ?, outcome = 'timeout' WHERE left_at IS NULL",
                (utc_text(now),),
            )


def test_a_failing_section_shows_its_error_in_place(world, alice) -> None:
    """The audit log unreadable (a directory where the file was): Recent activity says so, in
    words and in place; the rest of the dashboard works; no traceback anywhere."""
    log = Path(world.runtime.config.paths.event_log_path)
    kept = log.with_name(log.name + ".kept")
    log.rename(kept)
    log.mkdir()
    try:
        page = alice.page
        page.goto(world.url + "/")
        text = page.locator("#activity").inner_text()
        assert "Could not show this: cannot read the audit log" in text, text
        assert card(page, world.alice_gpu).count() == 1
        fragment = page.request.get(
            world.url + "/dashboard/activity", headers={"HX-Request": "true"}
        )
        assert fragment.status == 200 and "cannot read the audit log" in fragment.text()
        assert "Traceback" not in page.content() + fragment.text()
    finally:
        log.rmdir()
        kept.rename(log)


def test_a_gpu_request_over_the_quota_is_refused_with_what_to_do(world, alice) -> None:
    extra = world.box("ds01ta", "second-gpu", full_gpu=True)  # 2 of 2 GPU-equivalents held
    try:
        page = alice.page
        page.goto(world.url + "/containers/new")
        assert (
            "Your quota allows 0 more GPU-equivalent(s) (of 2)" in page.locator("main").inner_text()
        )
        page.get_by_label("Container name").fill(f"wp{world.tag}-a-toomuch")
        page.get_by_label(re.compile(r"^busybox")).check()
        page.get_by_label("A full GPU, not shared by MIG").check()
        page.get_by_role("button", name="Review").click()
        assert "a full GPU (not shared by MIG)" in page.locator("main").inner_text()
        page.get_by_role("button", name=re.compile(r"^Create ")).click()
        alert = page.get_by_role("alert").inner_text()
        assert "The container was not created" in alert and "quota" in alert, alert
        assert "Stop or remove a container that holds a GPU" in alert, alert
        assert page.get_by_label("A full GPU, not shared by MIG").is_checked()
    finally:
        world.op("ds01ta", "containers.remove", name=extra, force=True)


def test_cancelling_a_job_without_slurm_says_why(world, alice) -> None:
    page = alice.page
    page.goto(world.url + "/jobs")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(
        world.url + "/jobs/4242/cancel", form={"csrf_token": token}, headers={"Origin": world.url}
    )
    assert answer.status == 503, answer.status
    assert "Slurm is not configured on this server" in answer.text()
    assert "Traceback" not in answer.text()
