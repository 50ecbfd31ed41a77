"""Alertmanager's webhook payload (version 4), checked field by field, and the notice it becomes.

Everything in a payload is data, never markup: label values can carry what users chose
(container and user names), and the notice is shown as markdown in a Teams card. So every
piece of it is stripped of control characters, escaped for markdown and capped in size before
it reaches the text of a :class:`Notice`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ds01_core.api import Notice

#: The payload version this receiver understands (Alertmanager 0.x sends "4").
VERSION = "4"
#: Caps on what one notice shows: alerts listed, characters per field, the whole message.
MAX_ALERTS_SHOWN = 20
MAX_LABEL = 200
MAX_TEXT = 1000
MAX_SUBJECT = 200
MAX_MESSAGE = 16000
#: Labels that name what an alert is about, shown after its name when all alerts share them.
SUBJECT_LABELS = ("gpu", "slot", "user", "path", "plugin", "channel", "origin")
#: Labels shown on each alert's first line.
ALERT_LABELS = (*SUBJECT_LABELS, "container")

Severity = Literal["info", "warning", "action"]
_NOTICE_SEVERITY: dict[str, Severity] = {"critical": "action", "warning": "warning", "info": "info"}
_RANK = {"info": 0, "warning": 1, "action": 2}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WHITESPACE = re.compile(r"\s+")
#: characters that make markdown (Teams renders the card text as markdown) or HTML
_MARKUP = re.compile(r"([\\`*_\[\]<>#|~])")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload this receiver can read."""


@attrs.frozen
class Alert:
    """One alert of a notification, as Alertmanager sent it (not yet escaped)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str


@attrs.frozen
class Notification:
    """One webhook call: a group of alerts, firing or resolved."""

    status: str
    receiver: str
    alerts: tuple[Alert, ...]
    truncated: int = 0

    def count(self, status: str) -> int:
        return sum(1 for alert in self.alerts if alert.status == status)


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PayloadError(f"{where}: expected an object of strings")
    return value


def _text(value: Any, where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _status(value: Any, where: str) -> str:
    if value not in ("firing", "resolved"):
        raise PayloadError(f"{where}: expected 'firing' or 'resolved', got {value!r:.40}")
    return str(value)


def parse(body: bytes) -> Notification:
    """The notification in ``body``; :class:`PayloadError` names the first field that is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("expected a JSON object (Alertmanager's webhook payload)")
    if data.get("version") != VERSION:
        raise PayloadError(
            f"version: expected {VERSION!r} (Alertmanager's webhook payload), "
            f"got {data.get('version')!r:.40}"
        )
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("alerts: expected a non-empty list")
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, dict):
            raise PayloadError(f"{where}: expected an object")
        labels = _strings(raw.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise PayloadError(f"{where}.labels.alertname: missing")
        alerts.append(
            Alert(
                status=_status(raw.get("status"), f"{where}.status"),
                labels=labels,
                annotations=_strings(raw.get("annotations", {}), f"{where}.annotations"),
                starts_at=_text(raw.get("startsAt"), f"{where}.startsAt"),
                ends_at=_text(raw.get("endsAt"), f"{where}.endsAt", default=""),
            )
        )
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts: expected a count")
    return Notification(
        status=_status(data.get("status"), "status"),
        receiver=_text(data.get("receiver"), "receiver", default=""),
        alerts=tuple(alerts),
        truncated=truncated,
    )


# -- text ------------------------------------------------------------------------------------


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe(text: str, limit: int = MAX_TEXT) -> str:
    """One line of payload text as inert text: no control characters, markup escaped, capped."""
    flat = _WHITESPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    return _MARKUP.sub(r"\\\1", cap(flat, limit))


def moment(text: str) -> str:
    """``2026-11-30T12:00:00Z`` from Alertmanager's RFC 3339 time (nanoseconds, offsets)."""
    match = _TIME.match(text.strip())
    if not match:
        return safe(text, 40)
    return match.group(1) + ("Z" if match.group(2) in ("Z", "+00:00") else match.group(2))


def _common(alerts: tuple[Alert, ...]) -> dict[str, str]:
    first = alerts[0].labels
    return {
        key: value
        for key, value in first.items()
        if all(alert.labels.get(key) == value for alert in alerts[1:])
    }


def subject(notification: Notification) -> str:
    """``[FIRING:2] GpuXidError gpu 3`` (``[RESOLVED] …`` once all have resolved)."""
    firing = notification.count("firing")
    head = f"[FIRING:{firing}]" if notification.status == "firing" else "[RESOLVED]"
    shown = [a for a in notification.alerts if a.status == notification.status]
    shown = shown or list(notification.alerts)
    names = sorted({alert.labels["alertname"] for alert in shown})
    named = ", ".join(safe(name, 60) for name in names[:3])
    if len(names) > 3:
        named += f" +{len(names) - 3}"
    common = _common(tuple(shown))
    about = "".join(f" {key} {safe(common[key], 40)}" for key in SUBJECT_LABELS if common.get(key))
    return cap(f"{head} {named}{about}", MAX_SUBJECT)


def _block(alert: Alert) -> str:
    labels, notes = alert.labels, alert.annotations
    head = f"{alert.status.upper()} {safe(labels['alertname'], MAX_LABEL)}"
    head += f" ({safe(labels.get('severity', 'no severity'), 40)})"
    head += "".join(
        f" {key} {safe(labels[key], MAX_LABEL)}" for key in ALERT_LABELS if labels.get(key)
    )
    if labels.get("instance"):
        head += f" on {safe(labels['instance'], MAX_LABEL)}"
    head += f", since {moment(alert.starts_at)}"
    if alert.status == "resolved" and alert.ends_at:
        head += f", resolved {moment(alert.ends_at)}"
    lines = [head, safe(notes.get("summary") or "(no summary)")]
    if notes.get("runbook"):
        lines.append("Runbook: " + safe(notes["runbook"]))
    return "\n".join(lines)


def message(notification: Notification) -> str:
    """Every alert (firing first): name, severity, what it is about, start, summary, runbook."""
    ordered = sorted(notification.alerts, key=lambda a: a.status != "firing")
    blocks = [_block(alert) for alert in ordered[:MAX_ALERTS_SHOWN]]
    hidden = len(ordered) - len(blocks) + notification.truncated
    if hidden:
        blocks.append(f"… and {hidden} more alerts (see Alertmanager)")
    return cap("\n\n".join(blocks), MAX_MESSAGE)


def severity(notification: Notification) -> Severity:
    """``action`` for a critical firing alert, ``info`` for info ones, ``warning`` for any
    other; a notification whose alerts all resolved is ``info``."""
    if notification.status != "firing":
        return "info"
    ranks = [
        _NOTICE_SEVERITY.get(alert.labels.get("severity", ""), "warning")
        for alert in notification.alerts
        if alert.status == "firing"
    ]
    return max(ranks or ["warning"], key=lambda s: _RANK[s])


def notice(notification: Notification, user: str) -> Notice:
    """The one notice a notification becomes (event type ``alert.firing``/``alert.resolved``)."""
    return Notice(
        user=user,
        subject=subject(notification),
        message=message(notification),
        severity=severity(notification),
        event_type=f"alert.{notification.status}",
    )


def summary(notification: Notification) -> Mapping[str, Any]:
    """What the audit event ``alert.received`` records (capped: a payload cannot flood it)."""
    return {
        "status": notification.status,
        "receiver": cap(notification.receiver, MAX_LABEL),
        "firing": notification.count("firing"),
        "resolved": notification.count("resolved"),
        "alertnames": sorted({cap(a.labels["alertname"], 100) for a in notification.alerts})[
            :MAX_ALERTS_SHOWN
        ],
    }
