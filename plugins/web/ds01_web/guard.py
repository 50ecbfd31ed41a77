"""Who a REST request is, and whether they may go on: the bearer token, its owner as a
:class:`Caller` now, the token's scope, and the per-user rate limit."""

from __future__ import annotations

import collections
import math
import threading
import time

import attrs

from ds01_core.api import Caller, Runtime
from ds01_web.errors import WebError
from ds01_web.tokens import Refused, Token, TokenStore

BAD_TOKEN = (
    "the API token is not valid (unknown, expired, revoked or malformed): make a new one with "
    "`ds01 token create` on the server and send it as 'Authorization: Bearer <token>'"
)
NO_TOKEN = (
    "authentication required: send a personal API token as 'Authorization: Bearer <token>' "
    "(make one with `ds01 token create` on the server)"
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ds01"'}


@attrs.frozen
class Identity:
    """An authenticated request: its caller (as passwd and groups say now) and its token."""

    caller: Caller
    token: Token

    @property
    def can_write(self) -> bool:
        return "write" in self.token.scopes


class Denied(WebError):
    """401: no usable token; ``why`` is for the audit log only."""

    def __init__(self, message: str, why: Refused):
        super().__init__("unauthenticated", message, CHALLENGE)
        self.why = why


def authenticate(runtime: Runtime, header: str | None) -> Identity:
    """The identity ``Authorization: header`` proves, or :class:`Denied`."""
    if not header:
        raise Denied(NO_TOKEN, Refused("no token"))
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Denied(NO_TOKEN, Refused("not a bearer token"))
    found = TokenStore.under(runtime.config.paths.state_dir).check(presented.strip(), runtime.now())
    if isinstance(found, Refused):
        raise Denied(BAD_TOKEN, found)
    caller = Caller.from_uid(found.owner_uid, runtime.config.gateway.admin_group)
    if caller is None or caller.name != found.owner:  # gone, or the uid is someone else's now
        raise Denied(
            BAD_TOKEN, Refused("owner's account is gone or renamed", found.id, found.owner)
        )
    return Identity(caller, found)


class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds for each user (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, user: str) -> None:
        """Count one request of ``user``, or refuse it with 429 and ``Retry-After``."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(user, collections.deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                wait = max(1, math.ceil(seen[0] + self.window - now))
                raise WebError(
                    "rate_limited",
                    f"{user}: more than {self.limit} requests in {self.window:.0f} s "
                    f"(plugins.web.rate_limit); try again in {wait} s",
                    {"Retry-After": str(wait)},
                )
            seen.append(now)
            if len(self._seen) > 10000:  # forget users gone quiet
                for name in [
                    n for n, d in self._seen.items() if not d or d[-1] <= now - self.window
                ]:
                    del self._seen[name]


__all__ = ["Denied", "Identity", "RateLimiter", "authenticate"]
