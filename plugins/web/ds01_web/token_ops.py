"""``web.token_*``: a user's personal API tokens, made, listed and revoked as operations.

They are served on the API socket like every operation, so ``ds01 token …`` works for every
user through ``ds01-api`` (the caller known from the kernel). A token can never make a token:
the REST API refuses the route, and the operation itself refuses while a request authenticated
by a token is being served (:data:`VIA_TOKEN`), so a leaked token cannot outlive its expiry.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from typing import Any

from ds01_core.api import (
    Conflict,
    Duration,
    Forbidden,
    Invalid,
    NotFound,
    Operation,
    Param,
    ServiceContext,
    format_duration,
)
from ds01_web.config import WebConfig
from ds01_web.tokens import SCOPES, TokenStore

#: True while an operation runs for a request that a token authenticated (set by the REST app)
VIA_TOKEN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ds01_web_via_token", default=False
)
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def settings(ctx: ServiceContext) -> WebConfig:
    found = ctx.runtime.plugin_config("web")
    return found if isinstance(found, WebConfig) else WebConfig()


def store(ctx: ServiceContext) -> TokenStore:
    return TokenStore.under(ctx.runtime.config.paths.state_dir)


def _scopes(scope: list[str] | None) -> tuple[str, ...]:
    given = scope or ["read"]
    unknown = [s for s in given if s not in SCOPES]
    if unknown:
        raise Invalid(f"unknown scope {unknown[0]!r}: give read (GET only) or write (everything)")
    return tuple(s for s in SCOPES if s in given)


def create(ctx: ServiceContext, name: str, expires: str, scope: list[str] | None = None) -> Any:
    """A new token for the caller; its full text is in the answer, and only there."""
    if VIA_TOKEN.get():
        raise Forbidden(
            "a token cannot make tokens: run `ds01 token create` logged in on the server"
        )
    if not name or len(name) > 64 or not set(name) <= _NAME_OK:
        raise Invalid(
            f"token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' (e.g. ci-nightly)"
        )
    limit = settings(ctx).token_max_lifetime
    try:
        lifetime = Duration.parse(expires)
    except ValueError as exc:
        raise Invalid(f"--expires: {exc}") from None
    if float(lifetime) < 60:
        raise Invalid("--expires: a token must live at least a minute (e.g. 30d)")
    if float(lifetime) > float(limit):
        raise Invalid(
            f"--expires {expires}: tokens may live at most {format_duration(limit)} on this "
            "server (plugins.web.token_max_lifetime); give a shorter time"
        )
    now = ctx.runtime.now()
    tokens = store(ctx)
    active = [t for t in tokens.of_owner(ctx.caller.uid) if t.state(now) == "active"]
    if any(t.name == name for t in active):
        raise Conflict(f"you have a token named {name!r} already: revoke it or choose another name")
    most = settings(ctx).max_tokens_per_user
    if len(active) >= most:
        raise Conflict(f"you hold {len(active)} active tokens (the most is {most}): revoke some")
    token, text = tokens.create(
        ctx.caller.uid,
        ctx.caller.name,
        name,
        _scopes(scope),
        now,
        now + dt.timedelta(seconds=float(lifetime)),
    )
    return {**token.to_json(now), "token": text}


def list_tokens(ctx: ServiceContext) -> Any:
    """The caller's tokens (all states), never a secret."""
    now = ctx.runtime.now()
    return [t.to_json(now) for t in store(ctx).of_owner(ctx.caller.uid)]


def revoke(ctx: ServiceContext, id: str) -> Any:
    """Revoke one of the caller's tokens (by id); another user's is not found."""
    now = ctx.runtime.now()
    tokens = store(ctx)
    token = tokens.get(id.strip())
    if token is None or token.owner_uid != ctx.caller.uid:
        raise NotFound(f"you have no token {id!r} (see `ds01 token list`)")
    tokens.revoke(token.id, now)
    return (tokens.get(token.id) or token).to_json(now)


OPERATIONS = (
    Operation(
        "web.token_create",
        "POST",
        "/v1/tokens",
        create,
        (
            Param("name", required=True),
            Param("expires", required=True),
            Param("scope", "list"),
        ),
        summary="Make a personal API token (shown once); only from a logged-in session.",
    ),
    Operation("web.token_list", "GET", "/v1/tokens", list_tokens, summary="Your API tokens."),
    Operation(
        "web.token_revoke",
        "DELETE",
        "/v1/tokens/{id}",
        revoke,
        (Param("id", required=True),),
        summary="Revoke one of your API tokens.",
    ),
)
