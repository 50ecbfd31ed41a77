"""Signing in with a real headless Chromium: the sign-in page passes axe and works at a phone's
width, a password signs in through the form, the cookie the browser keeps is HttpOnly, Secure
and SameSite=Strict, signing out works, and single sign-on works across sites (the provider on
``localhost``, ds01-web on ``127.0.0.1``: the Strict session cookie still reaches ``next``)."""

from __future__ import annotations

import pytest

from tests.helpers.browser import axe_violations, chromium, describe_violations, phone_context
from tests.plugins.web.login_env import (
    PASSWORDS,
    login_world,
    need_root,
    pam_service,
    passwords,
    reserve,
)
from tests.plugins.web.oidc_env import ACCOUNTS, oidc_provider, oidc_section

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(unix_users, tmp_path_factory):
    need_root()
    base = tmp_path_factory.mktemp("login-browser")
    sock, url = reserve()
    with (
        pam_service() as service,
        passwords({"ds01ta": PASSWORDS["ds01ta"]}),
        oidc_provider(base / "provider", [f"{url}/login/oidc/callback"], host="localhost") as idp,
    ):
        web = {
            "login": {
                "pam_service": service,
                "oidc": oidc_section(idp.issuer, url, base / "client-secret"),
            }
        }
        with login_world(base / "app", web, sock=sock) as made:
            yield made


@pytest.fixture(scope="module")
def browser():
    with chromium() as found:
        yield found


def no_serious_violations(page) -> None:
    found = axe_violations(page)
    assert not found, describe_violations(found)


def fits(page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways at a phone's width: {width}"


def test_signing_in_and_out_at_a_phones_width(world, browser):
    with phone_context(browser) as context:
        page = context.new_page()
        page.goto(world.url + "/test/whoami")
        assert page.url == world.url + "/login?next=/test/whoami"
        no_serious_violations(page)
        fits(page)
        page.get_by_label("User name").fill("ds01ta")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_load_state()
        assert "user name or password is wrong" in page.get_by_role("alert").inner_text()
        no_serious_violations(page)  # the refusal too
        fits(page)
        page.get_by_label("Password").fill(PASSWORDS["ds01ta"])
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(world.url + "/test/whoami")
        assert page.inner_text("body") == "ds01ta pam"
        cookie = next(c for c in context.cookies() if c["name"] == "ds01_session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # no script sees it
        page.goto(world.url + "/reauth")
        no_serious_violations(page)
        fits(page)
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(world.url + "/login")
        page.goto(world.url + "/test/whoami")
        assert page.url.startswith(world.url + "/login?next=")


def test_single_sign_on_across_sites(world, browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(world.url + "/login?next=/test/whoami")
        page.get_by_role("link", name="Sign in with Test University").click()
        page.wait_for_url("http://localhost:*/interaction/*")
        page.get_by_label("Login").fill("ta-at-uni")
        page.get_by_label("Password").fill(ACCOUNTS["ta-at-uni"]["password"])
        page.get_by_role("button", name="Sign in at the provider").click()
        page.wait_for_url(world.url + "/test/whoami")
        assert page.inner_text("body") == "ds01ta oidc"
    finally:
        context.close()
