"""What the sign-in pages keep between requests: the brake, the pre-session CSRF key, and the
OpenID flows in progress; one per app (``request.app.state.login``), made on first use.

The sign-in form has no session to carry a CSRF token, so it gets one of its own: the browser
holds a random value in the ``ds01_login`` cookie (``HttpOnly; Secure; SameSite=Strict``, an
hour) and the form carries an HMAC of it under this process's key. A POST to /login needs both,
matching, and (like every action) no other site's ``Origin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

import attrs
from starlette.requests import Request

from ds01_web.login.brake import Brake
from ds01_web.site import site_of

LOGIN_COOKIE = "ds01_login"
LOGIN_COOKIE_AGE = 3600
#: how long an OpenID flow may take, from the click to the provider's answer
FLOW_LIFETIME = 600.0
MAX_FLOWS = 10_000
_MADE = threading.Lock()


@attrs.define
class Flow:
    """One OpenID authorization in progress (kept here, never in the browser)."""

    nonce: str
    verifier: str
    next: str
    started: float
    binding: str  # sha256 of the flow cookie's value: the browser that started it
    reauth_secret: str | None = None  # the session to refresh (re-authentication), if any
    reauth_user: str | None = None


class LoginState:
    def __init__(self, failures: int, window: float):
        self.brake = Brake(failures, window)
        self.key = secrets.token_bytes(32)
        self._flows: dict[str, Flow] = {}
        self._lock = threading.Lock()

    # -- the sign-in form's CSRF token ----------------------------------------------------------

    def form_token(self, cookie: str) -> str:
        return hmac.new(self.key, b"login-form:" + cookie.encode(), hashlib.sha256).hexdigest()

    def form_ok(self, cookie: str | None, presented: Any) -> bool:
        if not cookie or not isinstance(presented, str) or len(cookie) > 200:
            return False
        return hmac.compare_digest(self.form_token(cookie), presented)

    # -- OpenID flows ---------------------------------------------------------------------------

    def add_flow(self, state: str, flow: Flow) -> None:
        with self._lock:
            now = time.time()
            for key in [k for k, f in self._flows.items() if f.started < now - FLOW_LIFETIME]:
                del self._flows[key]
            if len(self._flows) >= MAX_FLOWS:
                self._flows.pop(next(iter(self._flows)))
            self._flows[state] = flow

    def take_flow(self, state: str, now: float) -> Flow | None:
        """The flow ``state`` names, once only, if it is not too old."""
        with self._lock:
            flow = self._flows.pop(state, None)
        if flow is None or flow.started < now - FLOW_LIFETIME:
            return None
        return flow


def login_state(request: Request) -> LoginState:
    app_state = request.app.state
    found = getattr(app_state, "login", None)
    if found is None:
        with _MADE:
            found = getattr(app_state, "login", None)
            if found is None:
                login = site_of(request).settings.login
                found = LoginState(login.brake_failures, float(login.brake_window))
                app_state.login = found
    assert isinstance(found, LoginState)
    return found


def binding_of(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def cookie(name: str, value: str, max_age: int, path: str = "/", same_site: str = "Strict") -> str:
    """A ``Set-Cookie`` value with the flags every ds01 cookie has."""
    return f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly; Secure; SameSite={same_site}"


__all__ = ["LOGIN_COOKIE", "Flow", "LoginState", "binding_of", "cookie", "login_state"]
