"""``/tokens`` in a real Chromium, signed in as real users: a token made on the page works over
REST at once and stops working when revoked there; its text is shown once; a refusal comes back
into the form; another user's tokens are not on the page; axe and a phone's width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.browser import (
    axe_violations,
    chromium,
    describe_violations,
    phone_context,
)
from tests.helpers.config import write_config
from tests.plugins.web.web_env import request, serving, session_for, signed_in_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("tokens-page")
    base.chmod(0o755)
    runtime = load_runtime(str(write_config(base)), runtime_class=ThreadedRuntime)
    try:
        with serving(runtime) as url:
            yield {"url": url, "runtime": runtime, "users": unix_users}
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def signed_in(browser: Any, world: dict[str, Any], user: str, **options: Any) -> Any:
    who = world["users"][user]
    secret = session_for(world["runtime"], who.name, who.uid)
    return signed_in_context(browser, world["url"], secret, **options)


def test_a_token_made_on_the_page_works_until_it_is_revoked_there(browser, world):
    context = signed_in(browser, world, "ds01ta")
    page = context.new_page()
    page.goto(world["url"] + "/tokens")
    page.get_by_label("Name").fill("page-made")
    page.get_by_label(re.compile(r"^write")).check()
    page.get_by_label("Expires after").select_option("7d")
    page.get_by_role("button", name="Make token").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("ds01_"), token
    assert "not shown again" in page.locator("main").inner_text()

    who = request(world["url"], "GET", "/api/v1/whoami", token)
    assert who.status == 200 and who.json["name"] == "ds01ta", who
    listed = request(world["url"], "GET", "/api/v1/tokens", token).json
    made = next(t for t in listed if t["name"] == "page-made")
    assert made["scopes"] == ["read", "write"] and made["state"] == "active"

    page.reload()  # shown once: a reload has no token text
    assert page.locator("#new-token").count() == 0 and token not in page.content()
    row = page.locator("tbody tr", has_text="page-made")
    row.get_by_role("button", name=re.compile(r"^Revoke")).click()
    page.wait_for_url(re.compile(r"/tokens\?revoked="))
    assert "revoked" in page.locator("tbody tr", has_text="page-made").inner_text()
    assert request(world["url"], "GET", "/api/v1/whoami", token).status == 401
    found = axe_violations(page)
    assert found == [], describe_violations(found)
    context.close()


def test_a_refusal_comes_back_into_the_form(browser, world):
    context = signed_in(browser, world, "ds01ta")
    page = context.new_page()
    page.goto(world["url"] + "/tokens")
    page.get_by_label("Name").fill("has spaces")
    page.get_by_role("button", name="Make token").click()
    alert = page.get_by_role("alert").inner_text()
    assert "use 1 to 64 letters" in alert, alert
    assert page.get_by_label("Name").input_value() == "has spaces"  # the answers are kept
    assert page.locator("#new-token").count() == 0
    context.close()


def test_another_users_tokens_are_not_on_the_page_and_cannot_be_revoked(browser, world):
    alice = signed_in(browser, world, "ds01ta")
    page = alice.new_page()
    page.goto(world["url"] + "/tokens")
    page.get_by_label("Name").fill("alice-private")
    page.get_by_role("button", name="Make token").click()
    token = page.locator("#new-token").input_value()
    token_id = token.split("_")[1]
    alice.close()

    bob = signed_in(browser, world, "ds01tb")
    page = bob.new_page()
    page.goto(world["url"] + "/tokens")
    assert "alice-private" not in page.content()
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(
        f"{world['url']}/tokens/{token_id}/revoke",
        form={"csrf_token": csrf},
        headers={"Origin": world["url"]},
        max_redirects=0,
    )
    assert answer.status == 404 and "you have no token" in answer.text(), answer.status
    assert request(world["url"], "GET", "/api/v1/whoami", token).status == 200
    bob.close()


def test_the_tokens_page_fits_a_phone(browser, world):
    who = world["users"]["ds01ta"]
    with phone_context(browser) as context:
        from ds01_web.sessions import COOKIE

        context.add_cookies(
            [{"name": COOKIE, "value": session_for(world["runtime"], who.name, who.uid),
              "url": world["url"], "httpOnly": True, "secure": True, "sameSite": "Strict"}]
        )  # fmt: skip
        page = context.new_page()
        page.goto(world["url"] + "/tokens")
        width = page.evaluate("() => [document.body.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        found = axe_violations(page)
        assert found == [], describe_violations(found)


def test_a_bug_in_a_page_is_one_line_for_the_visitor_not_a_traceback(tmp_path_factory):
    """An exception no handler expected: a 500 page that says what failed and what to do,
    under the pages' security headers; the traceback goes to the log only."""
    from starlette.routing import Route

    from ds01_web.app import create_app
    from tests.plugins.web.web_env import serving_app

    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug for the test")

    base = tmp_path_factory.mktemp("bug")
    base.chmod(0o755)
    runtime = load_runtime(str(write_config(base)), runtime_class=ThreadedRuntime)
    app = create_app(runtime)
    app.router.routes.insert(0, Route("/test/broken", broken))
    try:
        with serving_app(app) as url:
            answer = request(url, "GET", "/test/broken")
    finally:
        runtime.close()
    assert answer.status == 500, answer
    assert answer.headers["Content-Type"].startswith("text/html")
    text = answer.body.decode()
    assert "ds01-web failed on GET /test/broken (RuntimeError)" in text
    assert "tell an admin" in text and "Traceback" not in text and "a bug for the" not in text
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
