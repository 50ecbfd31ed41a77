"""Telling a user something: a notice delivered through every ``notify`` plugin, and logged.

Each channel's result is written to the audit log.

Every part of ds01 that tells a user something (warnings and stops of the cycle, bare-metal
reports, expiries, ``ds01 notify test``) calls :func:`tell_user`, so a notice is never sent
without a record of whether it arrived.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ds01_core.domain.model import DeliveryResult, Event, Notice
from ds01_core.framework.hooks import HookFailure

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

log = logging.getLogger(__name__)


def tell_user(runtime: Runtime, notice: Notice) -> list[DeliveryResult]:
    """Deliver a notice through every notify plugin and log each channel's result.

    A notifier that raises is a failed delivery on a channel named after the plugin (and a
    ``plugin.failed`` event); the other notifiers' deliveries still count."""
    failures: list[HookFailure] = []
    try:
        collected = runtime.hooks.notify(runtime, notice)
    except Exception as exc:  # the core's own fault; it must not break the caller's action
        log.exception("notify failed")
        results = [DeliveryResult("notify", False, str(exc))]
    else:
        failures = collected.failures
        results = list(collected)
        results += [DeliveryResult(f.plugin, False, f"raised {f.message}") for f in failures]
    for failure in failures:
        runtime.events.append(failure.event(notice.user, subject=notice.subject))
    for result in results:
        runtime.events.append(
            Event(
                "notify.delivered" if result.delivered else "notify.failed",
                user=notice.user,
                source=result.channel,
                details={
                    "subject": notice.subject,
                    "container": notice.container,
                    "detail": result.detail,
                },
            )
        )
    return results
