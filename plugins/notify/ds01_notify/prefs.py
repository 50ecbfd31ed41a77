"""Each user's choice among the channels the admin enabled (``ds01 notify prefs``).

Stored as exceptions to the default: a row says a user turned a channel on or off; a user with
no rows gets every channel the admin enabled. A channel the admin later disables is off for
everyone whatever they chose, and one the admin enables later is on for everyone who never
turned it off.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ds01_notify.address import resolve_address
from ds01_notify.config import CHANNELS, NotifyConfig
from ds01_notify.store import ensure_tables, transaction
from ds01_notify.text import iso

if TYPE_CHECKING:
    from ds01_core.api import Runtime

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notify_prefs (
        user TEXT NOT NULL,
        channel TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT,
        PRIMARY KEY (user, channel)
    )""",
)


class PrefsError(Exception):
    """A choice that cannot be made; the message says why and what can be chosen."""


def read_choices(runtime: Runtime, user: str) -> dict[str, bool]:
    """What ``user`` turned on or off (empty: the defaults)."""
    try:
        rows = runtime.state.db.execute(
            "SELECT channel, enabled FROM notify_prefs WHERE user = ?", (user,)
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # nobody has chosen anything yet
        raise
    return {row[0]: bool(row[1]) for row in rows}


def chosen_channels(runtime: Runtime, cfg: NotifyConfig, user: str) -> list[str]:
    """The channels that reach ``user``: enabled by the admin and not turned off by them."""
    choices = read_choices(runtime, user)
    return [name for name in cfg.enabled_channels() if choices.get(name, True)]


def _names(values: Iterable[str]) -> list[str]:
    """``--enable a,b --enable c`` → ``[a, b, c]``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def change(
    runtime: Runtime,
    cfg: NotifyConfig,
    user: str,
    *,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
    by: str | None = None,
) -> dict[str, bool]:
    """Record ``user``'s choices; returns the ones made. Nothing is written if any is refused."""
    on, off = _names(enable), _names(disable)
    unknown = sorted({n for n in on + off if n not in CHANNELS})
    if unknown:
        raise PrefsError(
            f"unknown channel {', '.join(unknown)}; the channels are {', '.join(CHANNELS)}"
        )
    both = sorted(set(on) & set(off))
    if both:
        raise PrefsError(f"{', '.join(both)} is both enabled and disabled; choose one")
    available = cfg.enabled_channels()
    refused = [name for name in on if name not in available]
    if refused:
        offer = ", ".join(available) or "none"
        raise PrefsError(
            f"{', '.join(refused)} is not enabled on this server by the admin, so it cannot "
            f"be chosen; you can choose among: {offer}"
        )
    made = {**dict.fromkeys(on, True), **dict.fromkeys(off, False)}
    if not made:
        return {}
    ensure_tables(runtime, "prefs", SCHEMA)
    now = iso(dt.datetime.now(dt.UTC))
    with transaction(runtime) as db:
        for name, enabled in made.items():
            db.execute(
                "INSERT INTO notify_prefs (user, channel, enabled, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user, channel) DO UPDATE SET "
                "enabled = excluded.enabled, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (user, name, int(enabled), now, by),
            )
    return made


@attrs.frozen
class ChannelPref:
    """One line of ``ds01 notify prefs``."""

    channel: str
    available: bool  # the admin enabled it
    chosen: bool  # the user has not turned it off
    detail: str  # where it delivers, or why it does not

    @property
    def used(self) -> bool:
        return self.available and self.chosen

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "used": self.used}


def _where(runtime: Runtime, cfg: NotifyConfig, channel: str, user: str) -> str:
    channels = cfg.channels
    if channel == "terminal":
        return "every terminal you are logged in on (unless mesg n)"
    if channel == "container_file":
        return f"{channels.container_file.path} in the container a notice is about"
    if channel == "email":
        address, why = resolve_address(runtime, channels.email, user)
        return f"to {address}" if address else why
    hooks = [f"{w.name} ({w.format})" for w in channels.webhooks if w.enabled]
    return "to " + ", ".join(hooks) if hooks else "no webhook configured"


def describe(runtime: Runtime, cfg: NotifyConfig, user: str) -> list[ChannelPref]:
    """Every channel, whether it reaches ``user``, and where."""
    choices = read_choices(runtime, user)
    available = cfg.enabled_channels()
    rows = []
    for name in CHANNELS:
        on = name in available
        detail = _where(runtime, cfg, name, user) if on else "not enabled by the admin"
        rows.append(ChannelPref(name, on, choices.get(name, True), detail))
    return rows
