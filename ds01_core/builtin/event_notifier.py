"""Every notice is also written to the audit log, whatever channels deliver it.

This keeps a record of what users were told even on a server with no notify plugin, and is
the delivery the admin can always check with ``ds01 events --type notice``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.domain.model import DeliveryResult, Event, Notice
from ds01_core.framework.hookspecs import hookimpl

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


@hookimpl(trylast=True)
def notify(runtime: Runtime, notice: Notice) -> list[DeliveryResult]:
    runtime.events.append(
        Event(
            "notice.recorded",
            user=notice.user,
            source="event-notifier",
            details={
                "subject": notice.subject,
                "message": notice.message,
                "severity": notice.severity,
                "container": notice.container,
                "about": notice.event_type,
            },
        )
    )
    return [DeliveryResult("audit-log", True)]
