"""Signing in to the pages with a real password checked by real PAM (the shipped service file,
pam_unix against /etc/shadow), over real HTTP with a cookie jar: the cookie's flags, the same
answer for every wrong password, CSRF and Origin, open redirects, signing out, expiry, the
brute-force brake, and re-authentication before an admin action."""

from __future__ import annotations

import pwd
import re
import subprocess
import time

import pytest

from tests.plugins.web.login_env import (
    PASSWORDS,
    WRONG,
    login_world,
    need_root,
    pam_service,
    passwords,
)
from tests.plugins.web.web_env import events

pytestmark = pytest.mark.integration
TA, TB, TC = PASSWORDS["ds01ta"], PASSWORDS["ds01tb"], PASSWORDS["ds01tc"]


@pytest.fixture(scope="module")
def pam_users(unix_users, admin_member):
    need_root()
    with pam_service() as service, passwords():
        yield service


@pytest.fixture(scope="module")
def world(pam_users, tmp_path_factory):
    web = {"login": {"methods": ["pam"], "pam_service": pam_users}}
    with login_world(tmp_path_factory.mktemp("login"), web) as made:
        yield made


def flags(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}


def test_the_login_page_has_a_form_and_a_pre_session_csrf_cookie(world):
    client = world.client()
    page = client.get("/login?next=/usage")
    assert page.status == 200, page
    assert 'action="/login"' in page.text and 'name="password"' in page.text
    assert page.field("next") == "/usage" and len(page.field("csrf_token")) == 64
    assert "Sign in with" not in page.text  # no single sign-on configured
    cookie = flags(page.cookie("ds01_login"))
    assert {"httponly", "secure"} <= set(cookie) and cookie["samesite"] == "Strict"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_pam_sign_in_gives_a_strict_session_cookie_and_is_audited(world):
    client = world.client()
    answer = client.sign_in("ds01ta", TA, "/test/whoami")
    assert answer.status == 303 and answer.location == "/test/whoami", answer
    session = answer.cookie("ds01_session")
    cookie = flags(session)
    assert {"httponly", "secure"} <= set(cookie)
    assert cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert 0 < int(cookie["max-age"]) <= 8 * 3600
    assert client.get("/test/whoami").text == "ds01ta pam"
    ok = [e for e in events(world.runtime, "web.login") if e["user"] == "ds01ta"]
    assert ok[-1]["details"] == {"result": "ok", "method": "pam", "address": "127.0.0.1"}
    # signed in, /login sends on to next
    assert client.get("/login?next=/test/whoami").location == "/test/whoami"
    # signing in again replaces the session: the first one is ended on the server
    first = client.cookie("ds01_session")
    other = world.client()
    form = other.get("/login")  # a form (this browser, signed in, is sent on by /login)
    both = f"ds01_session={first}; ds01_login={other.cookie('ds01_login')}"
    again = client.post(
        "/login",
        {"csrf_token": form.field("csrf_token"), "next": "/", "username": "ds01ta", "password": TA},
        headers={"Cookie": both},
    )
    assert again.status == 303 and client.cookie("ds01_session") != first
    stale = world.client().get("/test/whoami", headers={"Cookie": f"ds01_session={first}"})
    assert stale.status == 303


def test_every_wrong_sign_in_gets_the_same_answer_and_is_audited(world):
    subprocess.run(["chage", "-E", "0", "ds01tb"], check=True)  # expired: PAM's account stage
    try:
        tries = [("ds01ta", "not-the-password"), ("nosuchuser", TA), ("ds01tb", TB), ("ds01ta", "")]
        for user, password in tries:
            client = world.client()
            answer = client.sign_in(user, password)
            assert answer.status == 401, (user, answer)
            assert WRONG in answer.text and "ds01_session" not in str(answer.cookies())
            assert client.get("/test/whoami").status == 303
    finally:
        subprocess.run(["chage", "-E", "-1", "ds01tb"], check=True)
    refused = [e for e in events(world.runtime, "web.login") if e["details"]["result"] == "refused"]
    assert len(refused) >= 4
    assert all(e["details"]["address"] == "127.0.0.1" for e in refused)
    assert {e["details"]["name"] for e in refused[-4:]} == {"ds01ta", "nosuchuser", "ds01tb"}
    expired = [e for e in refused if e["details"]["name"] == "ds01tb"][-1]
    assert "PAM" in expired["details"]["why"]  # the reason is logged, never shown
    assert "PAM" not in answer.text
    # and once the account is valid again, the same password works
    assert world.client().sign_in("ds01tb", TB).status == 303


def test_a_sign_in_without_the_forms_token_or_from_another_site_is_refused(world):
    client = world.client()
    form = client.get("/login")
    token = form.field("csrf_token")
    good = {"csrf_token": token, "next": "/", "username": "ds01ta", "password": TA}
    for sent, headers in [
        ({**good, "csrf_token": ""}, {}),
        ({k: v for k, v in good.items() if k != "csrf_token"}, {}),
        ({**good, "csrf_token": "0" * 64}, {}),
        (good, {"Origin": "https://evil.example"}),
    ]:
        answer = client.post("/login", sent, headers=headers)
        assert answer.status == 403 and "out of date" in answer.text, answer
        assert "ds01_session" not in str(answer.cookies())
    # the token belongs to its cookie: another browser cannot use it
    other = world.client()
    other.get("/login")
    assert other.post("/login", good).status == 403
    denied = [
        e
        for e in events(world.runtime, "access.denied")
        if e["details"]["endpoint"] == "POST /login"
    ]
    assert len(denied) >= 5 and denied[-1]["details"]["address"] == "127.0.0.1"
    assert client.post("/login", good, headers={"Origin": world.url}).status == 303


def test_signed_in_posts_need_the_sessions_token_and_this_sites_origin(world):
    client = world.client()
    assert client.sign_in("ds01ta", TA).status == 303
    page = client.get("/reauth")
    token = page.field("csrf_token")
    assert client.post("/logout", {}).status == 403
    assert client.post("/logout", {"csrf_token": "x" * 43}).status == 403
    assert (
        client.post(
            "/logout", {"csrf_token": token}, headers={"Origin": "https://evil.example"}
        ).status
        == 403
    )
    assert client.get("/test/whoami").status == 200  # still signed in
    denied = [
        e
        for e in events(world.runtime, "access.denied")
        if e["details"]["endpoint"] == "POST /logout"
    ]
    assert len(denied) >= 3 and all(e["user"] == "ds01ta" for e in denied)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "http:/evil",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_site(world, target):
    client = world.client()
    assert client.get(f"/login?next={target}").field("next") == "/"
    answer = client.sign_in("ds01tb", TB, target)
    assert answer.status == 303 and answer.location == "/", answer


def test_signing_out_ends_the_session_on_the_server(world):
    client = world.client()
    assert client.sign_in("ds01tb", TB, "/test/whoami").status == 303
    secret = client.cookie("ds01_session")
    token = client.get("/reauth").field("csrf_token")
    out = client.post("/logout", {"csrf_token": token})
    assert out.status == 303 and out.location == "/login"
    assert re.match(r"ds01_session=;.*Max-Age=0", out.cookie("ds01_session"))
    assert client.get("/test/whoami").location == "/login?next=/test/whoami"
    # the old cookie, sent again by hand, opens nothing
    stolen = world.client()
    again = stolen.get("/test/whoami", headers={"Cookie": f"ds01_session={secret}"})
    assert again.status == 303 and again.location.startswith("/login")
    logout = [e for e in events(world.runtime, "web.logout") if e["user"] == "ds01tb"]
    assert logout and logout[-1]["details"]["address"] == "127.0.0.1"


def test_an_expired_session_sends_the_browser_to_sign_in(pam_users, tmp_path_factory):
    web = {"session_lifetime": "5s", "login": {"pam_service": pam_users}}
    with login_world(tmp_path_factory.mktemp("expiry"), web) as short:
        client = short.client()
        answer = client.sign_in("ds01ta", TA, "/test/whoami")
        assert int(flags(answer.cookie("ds01_session"))["max-age"]) == 5
        assert client.get("/test/whoami").status == 200
        time.sleep(5.5)
        # the browser would have dropped the cookie; send it anyway: the server refuses it too
        expired = client.get(
            "/test/whoami", headers={"Cookie": f"ds01_session={client.cookie('ds01_session')}"}
        )
        assert expired.status == 303 and expired.location == "/login?next=/test/whoami"


def test_the_brake_stops_guessing_per_user_name_and_per_address(pam_users, tmp_path_factory):
    web = {"login": {"pam_service": pam_users, "brake_failures": 3, "brake_window": "1m"}}
    with login_world(tmp_path_factory.mktemp("brake"), web) as braked:
        for _ in range(3):
            assert braked.client().sign_in("ds01ta", "guess").status == 401
        for user, password in (("ds01ta", TA), ("ds01tb", TB)):  # the right password, too late
            answer = braked.client().sign_in(user, password)
            assert answer.status == 429, answer
            assert "too many failed sign-ins" in answer.text and "minute" in answer.text
            assert 0 < int(answer.headers["Retry-After"]) <= 60
        assert braked.client().get("/test/whoami").status == 303
        seen = [e["details"]["result"] for e in events(braked.runtime, "web.login")]
        assert seen == ["refused"] * 3 + ["braked"] * 2


def test_admin_actions_want_a_recent_password(pam_users, tmp_path_factory):
    web = {"reauth_window": "5s", "login": {"pam_service": pam_users}}
    with login_world(tmp_path_factory.mktemp("reauth"), web) as short:
        admin = short.client()
        assert admin.sign_in("ds01tc", TC, "/test/whoami").status == 303
        token = admin.get("/reauth").field("csrf_token")
        came_from = {"Referer": short.url + "/test/whoami?tab=1"}
        done = admin.post("/test/admin", {"csrf_token": token}, headers=came_from)
        assert done.status == 200 and "done by ds01tc" in done.text  # just signed in: fresh
        time.sleep(5.5)
        stale = admin.post("/test/admin", {"csrf_token": token}, headers=came_from)
        assert stale.status == 303 and stale.location == "/reauth?next=/test/whoami%3Ftab%3D1", (
            stale
        )
        form = admin.get(stale.location)
        assert form.status == 200 and "Password for ds01tc" in form.text
        wrong = admin.post(
            "/reauth", {"csrf_token": token, "next": form.field("next"), "password": "no"}
        )
        assert wrong.status == 401 and "password is wrong" in wrong.text
        assert admin.post("/test/admin", {"csrf_token": token}).status == 303  # still stale
        right = admin.post(
            "/reauth", {"csrf_token": token, "next": form.field("next"), "password": TC}
        )
        assert right.status == 303 and right.location == "/test/whoami?tab=1"
        assert admin.post("/test/admin", {"csrf_token": token}).status == 200
        logins = [e["details"] for e in events(short.runtime, "web.login") if e["user"] == "ds01tc"]
        assert [d["result"] for d in logins] == ["ok", "refused", "ok"]
        assert logins[-1]["reauth"] is True and logins[-1]["method"] == "pam"
        # a plain user is no admin, fresh password or not
        plain = short.client()
        assert plain.sign_in("ds01ta", TA).status == 303
        token = plain.get("/reauth").field("csrf_token")
        assert plain.post("/test/admin", {"csrf_token": token}).status == 403


def test_pages_and_the_api_share_the_per_user_rate_limit(pam_users, unix_users, tmp_path_factory):
    from tests.plugins.web.web_env import request, token_for

    web = {"rate_limit": 4, "login": {"pam_service": pam_users}}
    with login_world(tmp_path_factory.mktemp("limit"), web) as limited:
        client = limited.client()
        assert client.sign_in("ds01ta", TA).status == 303
        token = token_for(limited.runtime, unix_users["ds01ta"].uid, "limit", ["read"])["token"]
        assert request(limited.url, "GET", "/api/v1/whoami", token).status == 200
        assert request(limited.url, "GET", "/api/v1/whoami", token).status == 200
        assert client.get("/test/whoami").status == 200
        assert client.get("/test/whoami").status == 200
        page = client.get("/test/whoami")  # the fifth request of ds01ta in a minute
        assert page.status == 429 and "rate_limit" in page.text, page
        assert request(limited.url, "GET", "/api/v1/whoami", token).status == 429
        # another user is counted on their own
        other = limited.client()
        assert other.sign_in("ds01tb", TB).status == 303
        assert other.get("/test/whoami").status == 200


def test_root_and_accounts_below_min_uid_never_sign_in(pam_users, tmp_path_factory):
    """Root and system accounts (a uid below ``login.min_uid``) are refused with the same
    answer as a wrong password, whatever the password: admins sign in as themselves."""
    from ds01_web.login.passwords import local_account

    assert local_account("root") is None and local_account("root", min_uid=0) is None
    assert local_account("ds01ta") is not None
    ta, tb = pwd.getpwnam("ds01ta").pw_uid, pwd.getpwnam("ds01tb").pw_uid
    assert ta < tb
    web = {"login": {"methods": ["pam"], "pam_service": pam_users, "min_uid": tb}}
    with login_world(tmp_path_factory.mktemp("minuid"), web) as world:
        below = world.client().sign_in("ds01ta", TA)  # the right password
        assert below.status == 401 and WRONG in below.text, below
        refused = [e for e in events(world.runtime, "web.login") if e["details"].get("why")]
        assert "uid of" in refused[-1]["details"]["why"]
        assert world.client().sign_in("ds01tb", TB).status == 303
