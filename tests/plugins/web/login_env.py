"""Sign-in tests' world: real passwords for the test users (chpasswd, restored afterwards), the
shipped PAM service file installed under a test name, the app served with a few test routes,
and a browser-like HTTP client with a cookie jar.

The client does not follow redirects (the tests look at each 303) and sends ``Secure`` cookies
over ``http://127.0.0.1``, as browsers do for loopback.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.api_socket.server import ThreadedRuntime
from ds01_web.app import create_app
from ds01_web.site import Visitor, action, page
from tests.helpers.config import write_config
from tests.plugins.web.web_env import serving_app

REPO = Path(__file__).resolve().parents[3]
PAM_FILE = REPO / "packaging" / "pam.d" / "ds01-web"
TEST_SERVICE = "ds01-web-test"
#: the test users' passwords while a module runs
PASSWORDS = {"ds01ta": "Ta-pass-4711", "ds01tb": "Tb-pass-4712", "ds01tc": "Tc-pass-4713"}
WRONG = "user name or password is wrong"


def need_root() -> None:
    if os.geteuid() != 0:
        reason = "sign-in tests set real passwords and a PAM service: they need root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true)", pytrace=False)
        pytest.skip(reason)


@contextmanager
def pam_service() -> Iterator[str]:
    """packaging/pam.d/ds01-web installed as /etc/pam.d/ds01-web-test (removed after)."""
    target = Path("/etc/pam.d") / TEST_SERVICE
    shutil.copyfile(PAM_FILE, target)
    try:
        yield TEST_SERVICE
    finally:
        target.unlink(missing_ok=True)


def _shadow_hash(user: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        name, hashed, *_ = line.split(":")
        if name == user:
            return hashed
    raise KeyError(user)


@contextmanager
def passwords(users: dict[str, str] = PASSWORDS) -> Iterator[dict[str, str]]:
    """Real passwords for ``users`` (chpasswd); their old hashes (locked: ``!``) put back."""
    old = {user: _shadow_hash(user) for user in users}
    lines = "".join(f"{user}:{password}\n" for user, password in users.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
    try:
        yield dict(users)
    finally:
        for user, hashed in old.items():
            subprocess.run(["usermod", "-p", hashed, user], check=True, capture_output=True)


# -- the app with test routes ------------------------------------------------------------------


@page
async def whoami(request: Request, visitor: Visitor) -> Response:
    return PlainTextResponse(f"{visitor.caller.name} {visitor.session.method}")


@action(admin=True)
async def admin_thing(request: Request, visitor: Visitor, form: Any) -> Response:
    return PlainTextResponse(f"admin action done by {visitor.caller.name}")


TEST_ROUTES = [
    Route("/test/whoami", whoami, methods=["GET"]),
    Route("/test/admin", admin_thing, methods=["POST"]),
]


def reserve() -> tuple[socket.socket, str]:
    """A bound loopback socket for an app to be served on, and its base URL (known before the
    app's configuration is written: the OpenID redirect URL names it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


class World:
    def __init__(self, runtime: ThreadedRuntime, url: str):
        self.runtime = runtime
        self.url = url

    def client(self) -> Client:
        return Client(self.url)


@contextmanager
def login_world(
    directory: Path,
    web: dict[str, Any],
    extra: dict[str, Any] | None = None,
    sock: socket.socket | None = None,
) -> Iterator[World]:
    """The app (and the test routes) for a configuration whose ``plugins.web`` is ``web``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    config = write_config(directory, {"plugins": {"web": web, **(extra or {})}})
    runtime = load_runtime(str(config), runtime_class=ThreadedRuntime)
    app = create_app(runtime)
    app.router.routes[0:0] = TEST_ROUTES
    try:
        with serving_app(app, sock) as url:
            yield World(runtime, url)
    finally:
        runtime.close()


# -- a browser-like HTTP client ----------------------------------------------------------------


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes, url: str = ""):
        self.url = url
        self.status = status
        self.headers = headers
        self.text = body.decode(errors="replace")

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))

    def cookies(self) -> list[str]:
        return list(self.headers.get_all("Set-Cookie") or [])

    def cookie(self, name: str) -> str:
        found = [c for c in self.cookies() if c.startswith(f"{name}=")]
        assert found, f"no Set-Cookie {name} in {self.cookies()}"
        return found[-1]

    def field(self, name: str) -> str:
        """The value of the (hidden) input ``name`` in the page."""
        match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', self.text)
        assert match, f"no input {name} in {self.text[:2000]}"
        return html.unescape(match.group(1))

    def __repr__(self) -> str:
        notice = re.search(r'role="alert">\s*(?:<p>)?([^<]*)', self.text)
        said = notice.group(1).strip() if notice else self.text[:400]
        return f"<{self.status} {self.url} {self.location or said!r}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """One browser: its cookie jar (Secure cookies sent to loopback http too)."""

    def __init__(self, base: str):
        self.base = base
        policy = http.cookiejar.DefaultCookiePolicy(secure_protocols=("https", "wss", "http"))
        self.jar = http.cookiejar.CookieJar(policy)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        url = path if path.startswith("http") else self.base + path
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        sent = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
        sent.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=sent)
        try:
            with self.opener.open(req, timeout=60) as answer:
                return Answer(answer.status, answer.headers, answer.read(), url)
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read(), url)

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Answer:
        return self.request("POST", path, form, **kw)

    def follow(self, answer: Answer, limit: int = 15) -> Answer:
        """Follow ``answer``'s redirects (GET), as a browser would."""
        for _ in range(limit):
            if answer.status not in (301, 302, 303, 307, 308):
                return answer
            answer = self.get(urllib.parse.urljoin(answer.url, answer.location))
        raise AssertionError("too many redirects")

    def sign_in(self, user: str, password: str, next_path: str = "/") -> Answer:
        """The sign-in form fetched and sent, as a person would; the answer to the POST."""
        form = self.get(f"/login?next={urllib.parse.quote(next_path)}")
        assert form.status == 200, form
        return self.post(
            "/login",
            {
                "csrf_token": form.field("csrf_token"),
                "next": form.field("next"),
                "username": user,
                "password": password,
            },
        )
