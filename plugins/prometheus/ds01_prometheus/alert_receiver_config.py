"""The ``plugins.prometheus.alert_receiver`` settings: Alertmanager's webhook into ds01's notices."""

from __future__ import annotations

import attrs

from ds01_core.api import AbsPath


@attrs.define
class AlertReceiverConfig:
    """Where Alertmanager's webhook payloads go: ``POST /alertmanager`` on the exporter's
    listener turns each notification into a notice for ``notice_user`` (delivered by the notify
    plugin: its webhooks, e.g. a Teams channel, and that user's e-mail).

    ``token_file`` holds the bearer token Alertmanager sends (``http_config.authorization``);
    without one, only peers on loopback are accepted.
    """

    enabled: bool = True
    token_file: AbsPath | None = None
    notice_user: str = "root"
