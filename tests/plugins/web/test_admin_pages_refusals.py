"""The admin pages refuse everyone but admins, over real HTTP to the real app: ds01ta (a plain
user, signed in, with their own valid CSRF token) gets 403 from every admin page, fragment and
POST, each refusal is an ``access.denied`` event naming the page, and nothing is changed; a
visitor who is not signed in is sent to /login; a POST without the CSRF token is refused even
for an admin. The 403 page itself passes axe in Chromium."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from ds01_core.framework.runtime import load_runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.api_socket.server import ThreadedRuntime
from tests.helpers.browser import axe_violations, chromium, describe_violations
from tests.plugins.web.test_admin_pages import (  # noqa: F401 (an autouse fixture)
    _still_admin,
    admin_config,
    admin_group_with,
)
from tests.plugins.web.web_env import (
    Answer,
    events,
    request,
    serving,
    session_for,
    signed_in_context,
)

pytestmark = pytest.mark.integration

GETS = (
    "/admin",
    "/admin/live",
    "/admin/users",
    "/admin/users/ds01tb",
    "/admin/overrides",
    "/admin/audit?user=ds01tb",
)
POSTS = (
    ("/admin/overrides", {"user": "ds01ta", "key": "max_gpu_equivalents", "value": "8",
                          "reason": "self-service (refusal test)", "expires": "2099-01-01T00:00"}),
    ("/admin/overrides/remove", {"id": "1"}),
)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory, unix_users):
    base = tmp_path_factory.mktemp("webadminrefuse")
    base.chmod(0o755)
    config = admin_config(base)
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    root = ServiceContext(runtime, Caller("root", 0, admin=True))
    made = call(
        root,
        "admin.override.set",
        user="ds01tb",
        assignments=["max_containers_per_user=5"],
        expires="2099-01-01T00:00",
        reason="kept (refusal test)",
    )
    alice, admin = unix_users["ds01ta"], unix_users["ds01tc"]
    with admin_group_with(admin.name), serving(runtime) as url:
        yield {
            "runtime": runtime,
            "url": url,
            "root": root,
            "override": made["ids"][0],
            "alice": session_for(runtime, alice.name, alice.uid),
            "admin": session_for(runtime, admin.name, admin.uid),
        }


def cookie(secret: str) -> dict[str, str]:
    return {"Cookie": f"ds01_session={secret}"}


def csrf_of(world: dict, secret: str) -> str:
    import time

    from ds01_web.app import settings_of
    from ds01_web.sessions import SessionStore

    runtime = world["runtime"]
    store = SessionStore.under(
        runtime.config.paths.state_dir, float(settings_of(runtime).session_lifetime)
    )
    session = store.get(secret, time.time())
    assert session is not None
    return session.csrf


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def post_form(
    url: str, path: str, fields: dict[str, str] | None, headers: dict[str, str]
) -> Answer:
    """A form POST as a browser sends it from the site's own page (a GET for no ``fields``);
    redirects are not followed."""
    body = None if fields is None else urllib.parse.urlencode(fields).encode()
    sent = {"Content-Type": "application/x-www-form-urlencoded", "Origin": url, **headers}
    method = "GET" if fields is None else "POST"
    req = urllib.request.Request(url + path, data=body, method=method, headers=sent)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def denials(world: dict, endpoint: str) -> list[dict]:
    return [
        e
        for e in events(world["runtime"], "access.denied")
        if e["user"] == "ds01ta" and e["details"]["endpoint"] == endpoint
    ]


@pytest.mark.parametrize("path", GETS)
def test_a_plain_user_is_refused_every_admin_page(world, path):
    answer = request(world["url"], "GET", path, headers=cookie(world["alice"]))
    assert answer.status == 403, answer
    text = answer.body.decode()
    assert "for ds01 admins only" in text and "ds01ta is not in the admin group" in text
    main = text.split("<main", 1)[1].split("</main>", 1)[0]
    assert "ds01tb" not in main  # nothing of what was asked for is shown
    endpoint = "GET " + path.split("?")[0]
    found = denials(world, endpoint)
    assert (
        found and found[-1]["details"]["reason"] == "not an admin" and found[-1]["source"] == "web"
    )


def test_an_htmx_poll_by_a_plain_user_gets_the_refusal_fragment(world):
    answer = request(
        world["url"], "GET", "/admin/live", headers={**cookie(world["alice"]), "HX-Request": "true"}
    )
    assert answer.status == 403
    assert (
        answer.body.decode().lstrip().startswith('<div class="notice notice-error" role="alert">')
    )


@pytest.mark.parametrize("path, fields", POSTS)
def test_a_plain_user_is_refused_every_admin_post_and_nothing_changes(world, path, fields):
    secret = world["alice"]
    sent = {**fields, "csrf_token": csrf_of(world, secret)}
    answer = post_form(world["url"], path, sent, cookie(secret))
    assert answer.status == 403, answer
    assert "only ds01 admins may do this" in answer.body.decode()
    found = denials(world, f"POST {path}")
    assert found and found[-1]["details"]["reason"] == "not an admin"
    listed = call(world["root"], "admin.override.list", all=True)
    assert [(o["id"], o["user"], o["status"]) for o in listed] == [
        (world["override"], "ds01tb", "active")
    ]


def test_not_signed_in_goes_to_login(world):
    answer = post_form(world["url"], "/admin/overrides", dict(POSTS[0][1]), {})
    assert answer.status == 303 and answer.headers["Location"].startswith("/login?next=")
    page = post_form(world["url"], "/admin/users", None, {})
    assert page.status == 303 and page.headers["Location"] == "/login?next=/admin/users"


def test_an_admin_post_without_the_csrf_token_is_refused(world):
    answer = post_form(world["url"], "/admin/overrides/remove", {"id": str(world["override"])},
                       cookie(world["admin"]))  # fmt: skip
    assert answer.status == 403 and "reload the page" in answer.body.decode()
    listed = call(world["root"], "admin.override.list")
    assert [o["id"] for o in listed] == [world["override"]]


def test_the_refusal_page_passes_axe(world):
    with chromium() as browser:
        context = signed_in_context(browser, world["url"], world["alice"])
        page = context.new_page()
        answer = page.goto(world["url"] + "/admin")
        assert answer.status == 403
        assert page.locator("h1").inner_text() == "Not allowed"
        # the navigation offers no Admin link to a plain user
        assert page.locator("nav[aria-label='Main'] a", has_text="Admin").count() == 0
        found = axe_violations(page)
        assert found == [], describe_violations(found)
        context.close()
