"""What every channel is: a name, a preference family, a time limit and a ``send``.

The dispatcher only knows this protocol, so adding a channel is one module plus one line in
:func:`ds01_notify.dispatch.build_channels`.
"""

from __future__ import annotations

from typing import Protocol

from ds01_core.api import DeliveryResult, Notice


class Channel(Protocol):
    """One way of reaching a user.

    ``name`` is what the delivery result (and so the audit event) says, e.g. ``webhook:slack``;
    ``family`` is what the admin enables and the user chooses (``webhook``); ``timeout`` is
    how long the dispatcher waits for ``send`` before it reports the channel as failed.
    """

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...

    @property
    def timeout(self) -> float: ...

    def send(self, notice: Notice) -> DeliveryResult:
        """Deliver ``notice``; may raise (the dispatcher turns that into a failed result)."""
        ...


def failed(channel: Channel, exc: BaseException) -> DeliveryResult:
    """A failed result naming the error, for a channel that raised."""
    message = str(exc) or type(exc).__name__
    return DeliveryResult(channel.name, False, f"{type(exc).__name__}: {message}")
