"""The REST API for tests: ``ds01-web``'s app served by a real uvicorn on a loopback port (in a
thread), real HTTP to it, and personal tokens made through the real operation as real users."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from ds01_core.framework.runtime import Runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.operations import ServiceContext
from ds01_web.app import create_app


@contextmanager
def serving(runtime: Runtime) -> Iterator[str]:
    """The app for ``runtime`` on 127.0.0.1 (a free port); yields its base URL."""
    with serving_app(create_app(runtime)) as url:
        yield url


@contextmanager
def serving_app(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """``app`` served by a real uvicorn (in a thread) on ``sock``, or a free loopback port."""
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Answer:
    """One HTTP answer: status, headers, and the body (JSON when it is)."""

    def __init__(self, status: int, headers: Any, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


def request(
    base: str,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """``method path`` over real HTTP; an error status is an answer, not an exception."""
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if data is not None:
        sent["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def token_for(runtime: Runtime, uid: int, name: str, scopes: list[str], expires: str = "1d") -> Any:
    """A token made by ``web.token_create`` as the user ``uid`` (the caller the API socket
    would see for them)."""
    caller = Caller.from_uid(uid, runtime.config.gateway.admin_group)
    assert caller is not None
    return call(
        ServiceContext(runtime, caller),
        "web.token_create",
        name=name,
        scope=scopes,
        expires=expires,
    )


def events(runtime: Runtime, event_type: str) -> list[dict[str, Any]]:
    with open(runtime.config.paths.event_log_path) as log:
        return [e for e in map(json.loads, log) if e["event_type"] == event_type]


def session_for(runtime: Runtime, user: str, uid: int, method: str = "pam") -> str:
    """A signed-in session for ``user`` made in the app's real session store (as a sign-in
    would); the secret for its cookie. For page tests that are not about signing in."""
    from ds01_web.app import settings_of
    from ds01_web.sessions import SessionStore

    store = SessionStore.under(
        runtime.config.paths.state_dir, float(settings_of(runtime).session_lifetime)
    )
    secret, _ = store.create(user, uid, method, time.time())
    return secret


def signed_in_context(browser: Any, base: str, secret: str, **options: Any) -> Any:
    """A Playwright browser context that carries the session cookie ``secret`` for ``base``
    (with the flags the app sets: HttpOnly, Secure, SameSite=Strict)."""
    from ds01_web.sessions import COOKIE

    context = browser.new_context(**options)
    context.add_cookies(
        [
            {
                "name": COOKIE,
                "value": secret,
                "url": base,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Strict",
            }
        ]
    )
    return context
