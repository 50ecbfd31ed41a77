"""From a notice to delivery results: which channels, the rate limit, then every channel at
once, each within its own time limit.

Channels run in parallel threads, so a notice takes as long as its slowest channel rather than
the sum of them, and a channel that hangs past its ``timeout`` is reported as failed and left
behind (a daemon thread) instead of holding up the lifecycle. Everything that needs the state
store (preferences, the rate limit, address lookups) happens first, in the calling thread,
because the store's connection belongs to that thread.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import DeliveryResult, Notice
from ds01_notify import ratelimit
from ds01_notify.address import resolve_address
from ds01_notify.channel import Channel, failed
from ds01_notify.config import NotifyConfig
from ds01_notify.container_file import ContainerFileChannel
from ds01_notify.email import EmailChannel
from ds01_notify.prefs import chosen_channels
from ds01_notify.terminal import TerminalChannel
from ds01_notify.webhook import WebhookChannel

if TYPE_CHECKING:
    from ds01_core.api import Runtime

log = logging.getLogger(__name__)

#: extra wait beyond a channel's own timeout before it is given up on
GRACE_SECONDS = 1.0
_ONLY_KEY = "ds01_notify.only"


def config_of(runtime: Runtime) -> NotifyConfig | None:
    cfg = runtime.plugin_config("notify")
    return cfg if isinstance(cfg, NotifyConfig) else None


@contextlib.contextmanager
def only_channels(runtime: Runtime, families: Collection[str] | None) -> Iterator[None]:
    """Within the block, deliver through ``families`` only (``ds01 notify test --channel``).

    Per thread: the API server runs callers' operations on threads sharing one runtime, and
    one user's test through one channel must not narrow a notice sent on another thread."""
    holder: threading.local = runtime.memo(_ONLY_KEY, threading.local)
    before: Collection[str] | None = getattr(holder, "only", None)
    holder.only = families
    try:
        yield
    finally:
        holder.only = before


def build_channels(runtime: Runtime, cfg: NotifyConfig, notice: Notice) -> list[Channel]:
    """The admin-enabled channels that apply to ``notice``, in delivery order."""
    channels: list[Channel] = []
    conf = cfg.channels
    if conf.terminal.enabled:
        channels.append(TerminalChannel(conf.terminal, runtime.now))
    if conf.container_file.enabled and notice.container:
        channels.append(ContainerFileChannel(conf.container_file, runtime.docker, runtime.now))
    if conf.email.enabled:
        address, why = resolve_address(runtime, conf.email, notice.user)
        channels.append(EmailChannel(conf.email, address, why, runtime.now))
    channels.extend(WebhookChannel(hook, runtime.now) for hook in conf.webhooks if hook.enabled)
    return channels


def run_channels(channels: Sequence[Channel], notice: Notice) -> list[DeliveryResult]:
    """Send through every channel in parallel; one result each, in the channels' order."""
    results: list[DeliveryResult | None] = [None] * len(channels)
    done = [threading.Event() for _ in channels]

    def work(index: int, channel: Channel) -> None:
        try:
            results[index] = channel.send(notice)
        except BaseException as exc:  # a channel must never take the others down
            log.exception("notify channel %s failed", channel.name)
            results[index] = failed(channel, exc)
        finally:
            done[index].set()

    started = time.monotonic()
    for index, channel in enumerate(channels):
        threading.Thread(
            target=work, args=(index, channel), name=f"ds01-notify-{channel.name}", daemon=True
        ).start()
    for index, channel in enumerate(channels):
        deadline = started + channel.timeout + GRACE_SECONDS
        if not done[index].wait(max(deadline - time.monotonic(), 0)):
            results[index] = DeliveryResult(
                channel.name, False, f"gave up: no result within {channel.timeout:g}s"
            )
    return [r for r in results if r is not None]


def deliver(runtime: Runtime, notice: Notice) -> list[DeliveryResult]:
    """The whole ``notify`` hook: never raises; a problem becomes a failed result."""
    cfg = config_of(runtime)
    if cfg is None:
        return []
    only: Collection[str] | None = getattr(runtime.memoized(_ONLY_KEY), "only", None)
    results: list[DeliveryResult] = []
    try:
        wanted = set(chosen_channels(runtime, cfg, notice.user))
    except (sqlite3.Error, OSError) as exc:  # an unreadable store must not silence notices
        log.warning("notify preferences unreadable, using the defaults: %s", exc)
        wanted = set(cfg.enabled_channels())
    if only is not None:
        wanted &= set(only)
    if notice.channels is not None:  # the sender's narrowing (a report: mail, not terminals)
        wanted &= set(notice.channels)
    if not wanted:
        return []
    channels = [c for c in build_channels(runtime, cfg, notice) if c.family in wanted]
    if not channels:
        return []
    try:
        refusal = ratelimit.admit(runtime, notice.user, cfg.rate_limit, runtime.now())
    except (sqlite3.Error, OSError) as exc:
        log.warning("notify rate limit unavailable, sending anyway: %s", exc)
        results.append(
            DeliveryResult(ratelimit.CHANNEL, False, f"not checked (state store: {exc})")
        )
        refusal = None
    if refusal is not None:
        return [refusal]
    return results + run_channels(channels, notice)
