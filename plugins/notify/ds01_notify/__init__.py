"""ds01-notify: tell users what ds01 did or is about to do, where they will see it.

Channels (each enabled by the admin in ``plugins.notify.channels``, each chosen or refused by
the user with ``ds01 notify prefs``): ``terminal`` (every terminal the user is logged in on,
like ``write``), ``container_file`` (a line appended to a file in the container the notice is
about), ``email`` (SMTP) and ``webhook`` (JSON for a generic receiver, Slack or Teams).

Public API beyond the hooks:

- :func:`deliver` ``(runtime, notice) -> list[DeliveryResult]``: what the ``notify`` hook does;
- :func:`add_resolver` ``(runtime, resolver)``: let another plugin say which e-mail address
  reaches a user (``resolver(user) -> str | None``);
- :func:`resolve_address`, :func:`chosen_channels`, :func:`change_prefs` and
  :class:`NotifyConfig`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import DeliveryResult, hookimpl
from ds01_notify.address import add_resolver, resolve_address
from ds01_notify.config import CHANNELS, NotifyConfig
from ds01_notify.dispatch import deliver
from ds01_notify.prefs import PrefsError, chosen_channels
from ds01_notify.prefs import change as change_prefs

if TYPE_CHECKING:
    import click

    from ds01_core.api import Notice, Operation, Runtime

__version__ = "0.1.0"

__all__ = [
    "CHANNELS",
    "NotifyConfig",
    "PrefsError",
    "add_resolver",
    "change_prefs",
    "chosen_channels",
    "deliver",
    "resolve_address",
]

log = logging.getLogger(__name__)


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.notify:``, validated by the core with every problem named by its path."""
    return {"notify": NotifyConfig}


@hookimpl
def notify(runtime: Runtime, notice: Notice) -> Sequence[DeliveryResult]:
    """One result per channel tried. Never raises: in pluggy, one raising implementation
    would lose every other notifier's results too."""
    try:
        return deliver(runtime, notice)
    except Exception as exc:
        log.exception("ds01-notify failed")
        return [DeliveryResult("notify", False, f"{type(exc).__name__}: {exc}")]


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``notify.prefs`` and ``notify.test``: the rules behind ``ds01 notify``."""
    from ds01_notify.services import OPERATIONS

    return OPERATIONS


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 notify prefs|test``."""
    from ds01_notify.cli import add_commands

    add_commands(cli)
