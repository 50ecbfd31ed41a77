"""The webhook channel: the notice as a JSON POST, shaped for a generic receiver, Slack or
Microsoft Teams.

A webhook's URL is often its secret (Slack and Teams put the token in the path), so results
and errors name the webhook, never its URL, and the URL may live in ``url_file``. Redirects are
not followed: a POST redirected to another place is a misconfiguration to report, not to
repeat elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import attrs

from ds01_core.api import DeliveryResult, Notice
from ds01_notify.config import WebhookConfig, check_url
from ds01_notify.email import read_secret
from ds01_notify.text import clean, iso, one_line, title

USER_AGENT = "ds01-notify/0.1"
#: MessageCard theme colour per severity
TEAMS_COLOURS = {"info": "0076D7", "warning": "FFA500", "action": "D13438"}


def _slack_escape(text: str) -> str:
    """Slack's three control characters, so a container name cannot ``<!channel>`` anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(fmt: str, notice: Notice, host: str, now: dt.datetime) -> dict[str, Any]:
    """The JSON body for ``fmt``: ``generic`` (every field), ``slack`` or ``teams``."""
    where = f"{notice.user} on {host}" + (
        f", container {one_line(notice.container)}" if notice.container else ""
    )
    if fmt == "slack":
        head = _slack_escape(title(notice))
        body = _slack_escape(clean(notice.message))
        return {"text": f"*{head}* ({_slack_escape(where)})\n{body}"}
    if fmt == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": one_line(notice.subject),
            "title": title(notice),
            "text": f"{clean(notice.message)}\n\n({where})",
            "themeColor": TEAMS_COLOURS.get(notice.severity, TEAMS_COLOURS["info"]),
        }
    return {
        "user": notice.user,
        "subject": notice.subject,
        "message": notice.message,
        "severity": notice.severity,
        "container": notice.container,
        "event_type": notice.event_type,
        "host": host,
        "timestamp": iso(now),
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then surfaces as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


@attrs.frozen
class WebhookChannel:
    """POSTs the notice to one configured webhook; delivered on any 2xx answer."""

    cfg: WebhookConfig
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    host: str = attrs.Factory(socket.gethostname)

    family = "webhook"

    @property
    def name(self) -> str:
        return f"webhook:{self.cfg.name}"

    @property
    def timeout(self) -> float:
        return float(self.cfg.timeout)

    def send(self, notice: Notice) -> DeliveryResult:
        cfg = self.cfg
        try:
            url = read_secret(cfg.url_file) if cfg.url_file else cfg.url
        except OSError as exc:
            return DeliveryResult(self.name, False, f"cannot read url_file: {exc.strerror}")
        if check_url(url):  # said without the URL, which is the secret
            return DeliveryResult(self.name, False, "url_file holds no http:// or https:// URL")
        body = json.dumps(payload(cfg.format, notice, self.host, self.now())).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **cfg.headers}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            hint = " (redirects are not followed: check the URL)" if 300 <= exc.code < 400 else ""
            return DeliveryResult(self.name, False, f"HTTP {exc.code} {exc.reason}{hint}")
        except TimeoutError:
            return DeliveryResult(self.name, False, f"no answer within {self.timeout:g}s")
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                return DeliveryResult(self.name, False, f"no answer within {self.timeout:g}s")
            return DeliveryResult(self.name, False, f"cannot reach it: {reason}")
        except OSError as exc:
            return DeliveryResult(self.name, False, f"{type(exc).__name__}: {exc}")
        return DeliveryResult(self.name, True, f"HTTP {status}")
