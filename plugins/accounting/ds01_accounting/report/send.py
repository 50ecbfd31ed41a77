"""Delivering a rendered report to its recipients as notices, through the notify plugin.

Each recipient gets one :class:`~ds01_core.api.Notice` (subject ``ds01 usage report 2026-11``,
narrowed with ``Notice.channels``) through ``tell_user``, so every delivery is in the audit log like any other notice. The report
goes only through ``plugins.accounting.report.channels`` (e-mail and webhooks by default: a
whole report written to an admin's terminal helps no one), and webhooks — one team channel,
whoever the recipient — get it once, with the first recipient, not once per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.api import Notice, tell_user

if TYPE_CHECKING:
    from ds01_core.api import Runtime

EVENT_TYPE = "accounting.report"
_ONCE = ("webhook",)
#: the built-in ``event-notifier`` records every notice in the audit log: not a delivery to
#: anyone, so it neither counts as reaching a recipient nor is listed
RECORD_ONLY = ("audit-log",)


@attrs.frozen
class Delivery:
    recipient: str
    channel: str
    delivered: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def send_report(
    runtime: Runtime,
    subject: str,
    body: str,
    recipients: Sequence[str],
    channels: Sequence[str],
) -> list[Delivery]:
    """Send ``body`` to every recipient; one :class:`Delivery` per channel tried, and one
    failed delivery for a recipient no channel reached (no notify plugin, every channel off)."""
    deliveries: list[Delivery] = []
    for index, user in enumerate(recipients):
        families = [c for c in channels if index == 0 or c not in _ONCE]
        if not families:
            continue
        notice = Notice(
            user=user,
            subject=subject,
            message=body,
            event_type=EVENT_TYPE,
            channels=tuple(families),  # the notify plugin delivers through these only
        )
        results = [r for r in tell_user(runtime, notice) if r.channel not in RECORD_ONLY]
        if not results:
            deliveries.append(
                Delivery(
                    user,
                    "none",
                    False,
                    f"no channel reached {user} (channels tried: {', '.join(families)}; is the "
                    "notify plugin installed, the channel enabled in plugins.notify and chosen "
                    f"by {user}?)",
                )
            )
        deliveries += [Delivery(user, r.channel, r.delivered, r.detail) for r in results]
    return deliveries
