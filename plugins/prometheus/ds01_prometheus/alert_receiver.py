"""ds01's Alertmanager receiver: ``POST /alertmanager`` turns a webhook call into one notice.

Debian's Alertmanager 0.25 has no Microsoft Teams receiver, so Alertmanager posts to ds01d
(its exporter listener) and ds01 delivers the alert through the notify plugin: its webhooks
(a Teams channel in ``teams`` format) and the notice user's e-mail. The exporter's HTTP server
calls :func:`receive` with the raw request; this module decides everything else.

Fail closed: with a ``token_file``, only a request carrying that bearer token (compared in
constant time) is heard; without one, only a peer on loopback. Every refusal is logged and
written to the audit log (``alert.refused``); every accepted notification too
(``alert.received``, with where it was delivered).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from typing import TYPE_CHECKING

from ds01_core.api import Event, tell_user
from ds01_prometheus import alert_message
from ds01_prometheus.alert_message import PayloadError

if TYPE_CHECKING:
    from ds01_core.api import Runtime
    from ds01_prometheus.alert_receiver_config import AlertReceiverConfig

log = logging.getLogger(__name__)

#: The path the exporter's server hands to :func:`receive`.
PATH = "/alertmanager"
#: The largest body read (Alertmanager's max_alerts: 20 keeps a real payload far below it).
MAX_BODY = 1024 * 1024
SOURCE = "prometheus"
#: Results that record a notice rather than deliver it to anyone (the core's audit-log notifier).
RECORD_ONLY = frozenset({"audit-log"})
_SECTION = "plugins.prometheus.alert_receiver"
#: Alertmanager flushes several groups at once; their notices take turns on the one runtime
#: (the notify plugin reads and writes the state store: preferences, the rate limit).
_DELIVERING = threading.Lock()


class Refused(Exception):
    """A request this receiver will not hear: the HTTP status and why (said to the client)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address in ``peer`` (``127.0.0.1``, ``::1``, ``127.0.0.1:5050``, ``[::1]:5050``)."""
    text = peer.strip()
    for candidate in (text, text.rpartition(":")[0].strip("[]"), text.strip("[]")):
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def is_loopback(peer: str) -> bool:
    """Whether ``peer`` is this host (``::ffff:127.0.0.1`` too)."""
    address = peer_address(peer)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def read_token(path: str) -> str:
    """The token: the file's first line. Raises :class:`Refused` (503) when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise Refused(503, f"{_SECTION}.token_file {path}: cannot read it: {detail}") from None
    if not token:
        raise Refused(503, f"{_SECTION}.token_file {path}: the file is empty")
    return token


def check_access(settings: AlertReceiverConfig, authorization: str | None, peer: str) -> None:
    """Raise :class:`Refused` unless the request may be heard (see the module's docstring)."""
    if settings.token_file is None:
        if not is_loopback(peer):
            raise Refused(
                403, f"only loopback peers without {_SECTION}.token_file (peer {peer!r:.60})"
            )
        return
    token = read_token(str(settings.token_file))
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Refused(401, "a bearer token is required (Authorization: Bearer …)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Refused(401, "wrong bearer token")


def _refuse(runtime: Runtime, refusal: Refused, peer: str) -> tuple[int, str]:
    log.warning("alert receiver refused a request from %s: %s", peer, refusal.reason)
    runtime.events.append(
        Event(
            "alert.refused",
            source=SOURCE,
            details={"peer": peer[:100], "status": refusal.status, "reason": refusal.reason},
        )
    )
    return refusal.status, refusal.reason


def receive(
    runtime: Runtime,
    settings: AlertReceiverConfig,
    body: bytes,
    authorization: str | None,
    peer: str,
) -> tuple[int, str]:
    """Handle one ``POST /alertmanager``: (HTTP status, plain-text answer).

    200 once the notice went through the notify plugins (delivered somewhere, or nowhere
    configured); 502 when every channel failed, so that Alertmanager retries; 400 for a body
    that is not a webhook payload; 401/403 for a caller that is not let in; 404 when the
    receiver is off; 413 for a body over :data:`MAX_BODY`; 503 when the token file is missing.
    """
    if not settings.enabled:
        return 404, f"the alert receiver is off ({_SECTION}.enabled)"
    try:
        check_access(settings, authorization, peer)
    except Refused as refusal:
        if refusal.status == 503:
            log.error("alert receiver cannot check tokens: %s", refusal.reason)
        return _refuse(runtime, refusal, peer)
    if len(body) > MAX_BODY:
        log.warning("alert receiver: a body of %d bytes from %s is too large", len(body), peer)
        return 413, f"the body is larger than {MAX_BODY} bytes"
    try:
        notification = alert_message.parse(body)
    except PayloadError as exc:
        log.warning("alert receiver: not an Alertmanager payload from %s: %s", peer, exc)
        return 400, f"not an Alertmanager webhook payload: {exc}"
    notice = alert_message.notice(notification, settings.notice_user)
    with _DELIVERING:
        results = [r for r in tell_user(runtime, notice) if r.channel not in RECORD_ONLY]
        delivered = [r.channel for r in results if r.delivered]
        failed = [r.channel for r in results if not r.delivered]
        runtime.events.append(
            Event(
                "alert.received",
                user=settings.notice_user,
                source=SOURCE,
                details={
                    **alert_message.summary(notification),
                    "subject": notice.subject,
                    "delivered": delivered,
                    "failed": failed,
                },
            )
        )
    if not results:
        log.warning(
            "alert %s reached no channel: no notify plugin or channel is configured for %s",
            notice.subject,
            settings.notice_user,
        )
        return 200, "received; no notify channel is configured"
    if not delivered:
        log.error("alert %s: every channel failed: %s", notice.subject, ", ".join(failed))
        return 502, "every notify channel failed: " + ", ".join(failed)
    return 200, "delivered through " + ", ".join(delivered)
