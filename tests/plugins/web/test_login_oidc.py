"""Single sign-on against a real OpenID provider on loopback (node-oidc-provider, see
oidc_env.py), driven over real HTTP with a cookie jar: the authorization-code flow with PKCE,
state and nonce, the id_token checked, the user name mapped to a local account (or refused),
a callback from another browser or replayed refused, and re-authentication through the
provider (prompt=login, max_age=0) before an admin action."""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest

from tests.plugins.web.login_env import Answer, Client, login_world, reserve
from tests.plugins.web.oidc_env import ACCOUNTS, oidc_provider, oidc_section
from tests.plugins.web.web_env import events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(unix_users, admin_member, tmp_path_factory):
    base = tmp_path_factory.mktemp("login-oidc")
    sock, url = reserve()
    with oidc_provider(base / "provider", [f"{url}/login/oidc/callback"]) as provider:
        web = {
            "reauth_window": "5s",
            "login": {"oidc": oidc_section(provider.issuer, url, base / "client-secret")},
        }
        with login_world(base / "app", web, sock=sock) as made:
            made.provider = provider  # type: ignore[attr-defined]
            yield made


def at_provider(client: Client, answer: Answer, login: str) -> Answer:
    """From the redirect to the provider: its sign-in form filled in as ``login``; the answer
    of the first page that is no redirect after it (ds01-web's callback, normally)."""
    form = client.follow(answer)
    assert form.status == 200 and "Test university sign-in" in form.text, form
    action = re.search(r'action="([^"]+)"', form.text)
    assert action, form.text
    sent = client.post(
        urllib.parse.urljoin(form.url, action.group(1)),
        {"login": login, "password": ACCOUNTS[login]["password"]},
    )
    assert sent.status in (302, 303), sent
    return sent


def sso(client: Client, login: str, next_path: str = "/test/whoami") -> Answer:
    start = client.get(f"/login/oidc/start?next={urllib.parse.quote(next_path)}")
    assert start.status == 303, start
    return client.follow(at_provider(client, start, login))


def test_the_sign_in_page_offers_single_sign_on(world):
    page = world.client().get("/login?next=/usage")
    assert 'href="/login/oidc/start?next=/usage"' in page.text
    assert "Sign in with Test University" in page.text
    assert 'name="password"' in page.text  # pam stays on (the default)


def test_single_sign_on_signs_a_local_user_in(world):
    client = world.client()
    start = client.get("/login/oidc/start?next=/test/whoami")
    target = urllib.parse.urlsplit(start.location)
    params = urllib.parse.parse_qs(target.query)
    assert start.location.startswith(world.provider.issuer + "/auth?")
    assert params["code_challenge_method"] == ["S256"] and params["response_type"] == ["code"]
    assert len(params["state"][0]) >= 40 and len(params["nonce"][0]) >= 40
    assert "prompt" not in params and "code_verifier" not in start.location
    flow_cookie = start.cookie("ds01_oidc")
    assert (
        "SameSite=Lax" in flow_cookie
        and "HttpOnly" in flow_cookie
        and "Path=/login/oidc" in flow_cookie
    )
    landed = client.follow(at_provider(client, start, "ta-at-uni"))
    assert landed.url.startswith(world.url + "/login/oidc/callback?"), landed.url
    assert (
        landed.status == 200 and 'http-equiv="refresh" content="0;url=/test/whoami"' in landed.text
    )
    session = landed.cookie("ds01_session")
    assert "HttpOnly" in session and "Secure" in session and "SameSite=Strict" in session
    assert client.get("/test/whoami").text == "ds01ta oidc"
    last = events(world.runtime, "web.login")[-1]
    assert last["user"] == "ds01ta"
    assert last["details"] == {"result": "ok", "method": "oidc", "address": "127.0.0.1"}


def test_a_provider_user_without_a_local_account_is_refused_clearly(world):
    client = world.client()
    answer = sso(client, "stranger")
    assert answer.status == 403, answer
    assert "no account nobody-here" in answer.text and "ask an admin" in answer.text
    assert "ds01_session" not in str(answer.cookies())
    assert client.get("/test/whoami").status == 303
    last = events(world.runtime, "web.login")[-1]["details"]
    assert last["result"] == "refused" and last["why"].startswith("no local account")


def test_a_callback_in_another_browser_or_a_replay_is_refused(world):
    victim, attacker = world.client(), world.client()
    start = attacker.get("/login/oidc/start")
    back = at_provider(attacker, start, "ta-at-uni")
    callback = back
    while not callback.location.startswith(world.url):  # up to the redirect to ds01-web
        callback = attacker.get(urllib.parse.urljoin(callback.url, callback.location))
    forged = victim.get(callback.location)  # the attacker's code, in the victim's browser
    assert forged.status == 400 and "another browser" in forged.text, forged
    assert victim.get("/test/whoami").status == 303
    replayed = attacker.get(callback.location)  # the state was used up
    assert replayed.status == 400
    # a made-up state, and an error from the provider
    assert world.client().get("/login/oidc/callback?code=x&state=y").status == 400


def test_re_authentication_goes_through_the_provider_again(world):
    admin = world.client()
    assert sso(admin, "tc-at-uni").status == 200
    assert admin.get("/test/whoami").text == "ds01tc oidc"
    token = admin.get("/reauth").field("csrf_token")
    first = admin.post("/test/admin", {"csrf_token": token})
    assert first.status == 200, first
    time.sleep(5.5)
    stale = admin.post("/test/admin", {"csrf_token": token})
    assert stale.status == 303 and stale.location.startswith("/reauth?"), stale
    page = admin.get(stale.location)
    link = re.search(r'href="(/login/oidc/start\?reauth=1[^"]+)"', page.text)
    assert link and "Confirm with Test University" in page.text, page.text
    start = admin.get(link.group(1).replace("&amp;", "&"))
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(start.location).query)
    assert params["prompt"] == ["login"] and params["max_age"] == ["0"]
    done = admin.follow(at_provider(admin, start, "tc-at-uni"))  # the provider asks again
    assert done.status == 200 and "Signed in" in done.text, done
    assert admin.post("/test/admin", {"csrf_token": token}).status == 200
    last = events(world.runtime, "web.login")[-1]
    assert last["user"] == "ds01tc" and last["details"]["reauth"] is True
    # without the session's token the re-authentication does not even start
    assert admin.get("/login/oidc/start?reauth=1&csrf=wrong").location.startswith("/login?")


def test_re_authentication_as_someone_else_is_refused(world):
    admin = world.client()
    assert sso(admin, "tc-at-uni").status == 200
    token = admin.get("/reauth").field("csrf_token")
    for cookie in [c for c in admin.jar if c.name.startswith("_session")]:  # the provider's
        admin.jar.clear(cookie.domain, cookie.path, cookie.name)
    start = admin.get(f"/login/oidc/start?reauth=1&next=/&csrf={urllib.parse.quote(token)}")
    refused = admin.follow(at_provider(admin, start, "ta-at-uni"))
    assert refused.status == 403 and "did not prove it is ds01tc" in refused.text, refused


def test_a_client_secret_open_to_others_is_refused(world):
    secret = world.runtime.plugin_config("web").login.oidc.client_secret_file
    import os

    os.chmod(secret, 0o644)
    try:
        answer = sso(world.client(), "ta-at-uni")
        assert answer.status == 401 and "misconfigured" in answer.text, answer
        last = events(world.runtime, "web.login")[-1]["details"]
        assert "chmod 600" in last["why"]
    finally:
        os.chmod(secret, 0o600)


def test_a_user_name_in_the_id_token_itself(unix_users, tmp_path_factory):
    """Providers that put the claim in the id_token (no userinfo call needed)."""
    base = tmp_path_factory.mktemp("login-oidc-claims")
    sock, url = reserve()
    callback = [f"{url}/login/oidc/callback"]
    with oidc_provider(base / "provider", callback, claims_in_id_token=True) as provider:
        web = {"login": {"methods": [], "oidc": oidc_section(provider.issuer, url, base / "s")}}
        with login_world(base / "app", web, sock=sock) as made:
            page = made.client().get("/login")
            assert (
                "Sign in with Test University" in page.text and 'name="password"' not in page.text
            )
            client = made.client()
            assert sso(client, "ta-at-uni").status == 200
            assert client.get("/test/whoami").text == "ds01ta oidc"
