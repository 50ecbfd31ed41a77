"""The notify plugin's service operations: a user's channels, and a test notice.

The rules live here, not in the CLI: every caller acts on their own channels and sends test
notices to themselves; another user's only when the caller is an admin. The CLI (in-process
for root, over the API socket for everyone else) only renders what these return.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from ds01_core.domain.model import Event, Notice
from ds01_core.services.errors import Conflict, Invalid, NotFound, Unavailable
from ds01_core.services.operations import Operation, Param, ServiceContext
from ds01_notify.config import CHANNELS, NotifyConfig
from ds01_notify.dispatch import config_of, only_channels
from ds01_notify.prefs import PrefsError, change, chosen_channels, describe
from ds01_notify.text import iso


def _config(ctx: ServiceContext) -> NotifyConfig:
    cfg = config_of(ctx.runtime)
    if cfg is None:
        raise Unavailable("the notify plugin has no configuration section on the server")
    return cfg


def prefs(
    ctx: ServiceContext,
    user: str | None = None,
    enable: list[str] | None = None,
    disable: list[str] | None = None,
) -> dict[str, Any]:
    """Change (``enable``/``disable``, each a list of names or ``a,b``) and show which
    channels reach ``user`` (the caller; another user's: admins only). A change is logged as
    ``notify.prefs_changed`` with who made it."""
    name = ctx.target_user(user, "another user's notification channels")
    cfg = _config(ctx)
    runtime = ctx.runtime
    caller = ctx.caller.name
    try:
        made = change(runtime, cfg, name, enable=enable or (), disable=disable or (), by=caller)
        rows = describe(runtime, cfg, name)
    except PrefsError as exc:
        raise Invalid(str(exc)) from None
    except (sqlite3.Error, OSError) as exc:
        raise Unavailable(f"cannot reach the notification preferences: {exc}") from None
    if made:
        runtime.events.append(
            Event(
                "notify.prefs_changed",
                user=name,
                source="notify",
                details={
                    "enabled": sorted(k for k, v in made.items() if v),
                    "disabled": sorted(k for k, v in made.items() if not v),
                    "by": caller,
                },
            )
        )
    return {"user": name, "channels": [row.to_json() for row in rows]}


def _test_notice(user: str, by: str, container: str | None, channel: str | None) -> Notice:
    via = f"the {channel} channel" if channel else "every channel you have on"
    sender = "" if by == user else f" by {by}"
    return Notice(
        user=user,
        subject="Test notice",
        message=(
            f"This is a test notice from ds01 through {via}, sent{sender} with "
            f"`ds01 notify test` at {iso(dt.datetime.now(dt.UTC))}. If you can read it, the "
            "channel reaches you."
        ),
        severity="info",
        container=container,
        event_type="notify.test",
    )


def _check_channel(ctx: ServiceContext, cfg: NotifyConfig, user: str, channel: str) -> None:
    if channel not in CHANNELS:
        raise Invalid(f"unknown channel {channel}; the channels are {', '.join(CHANNELS)}")
    if channel not in cfg.enabled_channels():
        offer = ", ".join(cfg.enabled_channels()) or "none"
        raise Invalid(f"{channel} is not enabled on this server by the admin; enabled: {offer}")
    try:
        chosen = chosen_channels(ctx.runtime, cfg, user)
    except (sqlite3.Error, OSError) as exc:
        raise Unavailable(f"cannot read the notification preferences: {exc}") from None
    if channel not in chosen:
        who = "you" if user == ctx.caller.name else user
        raise Invalid(
            f"{who} turned {channel} off; turn it on with: ds01 notify prefs --enable {channel}"
            + ("" if who == "you" else f" --user {user}")
        )


def _container_id(ctx: ServiceContext, user: str, name: str) -> str:
    """One of ``user``'s containers (never another's: the server writes into it as root)."""
    from ds01_core.domain.docker_engine import DockerError
    from ds01_core.services.user_containers import ContainerError, ContainerService

    try:
        return ContainerService(ctx.runtime, user).find(name).id
    except ContainerError as exc:
        raise NotFound(str(exc)) from None
    except DockerError as exc:
        if exc.status is None:
            raise Unavailable(f"cannot reach Docker: {exc}") from None
        raise Conflict(f"Docker: {exc}") from None


def test(
    ctx: ServiceContext,
    user: str | None = None,
    channel: str | None = None,
    container: str | None = None,
) -> dict[str, Any]:
    """Send ``user`` (the caller; another user: admins only) a test notice, through
    ``channel`` or every channel they have on; one result per channel tried."""
    from ds01_core.cycle.notices import tell_user

    name = ctx.target_user(user, "test notices to another user")
    cfg = _config(ctx)
    if channel:
        _check_channel(ctx, cfg, name, channel)
    if channel == "container_file" and not container:
        raise Invalid("--channel container_file needs --container NAME: the file is in a container")
    container_id = _container_id(ctx, name, container) if container else None
    runtime = ctx.runtime
    notice = _test_notice(name, ctx.caller.name, container_id, channel)
    try:
        with only_channels(runtime, {channel} if channel else None):
            results = tell_user(runtime, notice)
    except (sqlite3.Error, OSError) as exc:
        raise Unavailable(f"cannot send the test notice: {exc}") from None
    return {
        "user": name,
        "results": [
            {"channel": r.channel, "delivered": r.delivered, "detail": r.detail} for r in results
        ],
    }


_USER = Param("user")

OPERATIONS = (
    Operation(
        "notify.prefs",
        "POST",
        "/v1/notify/prefs",
        prefs,
        (_USER, Param("enable", "list"), Param("disable", "list")),
        summary="Which channels reach you; turn them on or off.",
    ),
    Operation(
        "notify.test",
        "POST",
        "/v1/notify/test",
        test,
        (_USER, Param("channel"), Param("container")),
        summary="Send yourself a test notice.",
    ),
)
