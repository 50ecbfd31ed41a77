"""Hook specifications that tell users things: notices delivered, usage shown by ``ds01 quota``.

Each channel or resource belongs to one plugin; one that fails never hides the others'. The
rules common to every hook are in :mod:`ds01_core.framework.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ds01_core.framework.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from ds01_core.domain.model import (
        DeliveryResult,
        EffectiveLimits,
        Notice,
        QuotaLine,
    )
    from ds01_core.framework.runtime import Runtime


@hookspec
def notify(runtime: Runtime, notice: Notice) -> Sequence[DeliveryResult]:
    """Deliver a notice to a user through the channels this plugin provides.

    Called whenever a user must be told something (a warning before an idle stop, a quota
    refusal, a stop that happened).

    :param runtime: the process's runtime.
    :param notice: what to say, to whom, how urgently, and about which container.
    :return: one result per channel tried; the core logs each as an event. A channel must catch
        its own errors and report them as a failed :class:`~ds01_core.domain.model.DeliveryResult`, so
        that one failing channel never blocks the others.

    Not firstresult: every notifier gets every notice.

    If an implementation raises: it counts as one failed delivery on a channel named after the
    plugin (a ``notify.failed`` event) and a ``plugin.failed`` event is written; the other
    notifiers' deliveries are kept, and the action that sent the notice goes on.
    """


@hookspec
def quota_usage(runtime: Runtime, user: str, limits: EffectiveLimits) -> Sequence[QuotaLine]:
    """Report a user's usage of the resources this plugin limits, for ``ds01 quota``.

    Called when a person runs ``ds01 quota`` (for themselves, or an admin for a user); it may
    read files and caches but should answer within a second.

    :param runtime: the process's runtime.
    :param user: the normalised user name.
    :param limits: the user's effective limits.
    :return: one :class:`~ds01_core.domain.model.QuotaLine` per resource (``memory``, ``disk /home`` …).

    Not firstresult: every plugin's lines are shown, after the core's GPU line.

    If an implementation raises: its place is taken by one line named after the plugin that
    says ``unavailable: <error>``; the other plugins' lines are shown.
    """
