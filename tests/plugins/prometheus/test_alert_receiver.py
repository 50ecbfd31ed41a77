"""ds01's Alertmanager receiver: a webhook payload becomes one notice, delivered by the real
notify plugin to a Teams-format webhook and an SMTP server on loopback; bad payloads, wrong
tokens and foreign peers are refused (and audited); nothing in a payload becomes markup."""

from __future__ import annotations

import email
import email.policy
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ds01_notify
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_prometheus import alert_message
from ds01_prometheus.alert_receiver import MAX_BODY, is_loopback, receive
from ds01_prometheus.alert_receiver_config import AlertReceiverConfig
from tests.plugins.notify.notify_servers import SmtpServer, WebhookServer, start_smtp
from tests.plugins.prometheus.alerting import (
    ADMINS,
    alert,
    events,
    exporter_listener,
    notify_section,
    payload,
    receiver_server,
)

XID = alert(
    "GpuXidError",
    summary="GPU 3: critical XID error 79",
    runbook="Run 'ds01 gpu health'; drain or reset the GPU.",
    gpu="3",
    instance="gpu01:9101",
)
XID_WARNING = alert(
    "GpuXidError",
    severity="warning",
    summary="GPU 3: XID error 79",
    runbook="Nothing unless it repeats.",
    starts_at="2026-11-30T12:00:30Z",
    gpu="3",
    instance="gpu01:9101",
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


@pytest.fixture
def webhooks() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def runtime(tmp_config: Callable[..., Path], webhooks, smtp) -> Iterator[Runtime]:
    """A runtime with the notify plugin: Teams webhook + e-mail to root (admins@example.org)."""
    path = tmp_config({"plugins": {"notify": notify_section(webhooks.url("/teams"), smtp.port)}})
    made = load_runtime(str(path), no_plugins=True, extra_plugins=(("notify", ds01_notify),))
    yield made
    made.close()


def post(runtime: Runtime, body: Any, settings: AlertReceiverConfig | None = None, **kw: Any):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return receive(
        runtime,
        settings or AlertReceiverConfig(),
        raw,
        kw.get("authorization"),
        kw.get("peer", "127.0.0.1"),
    )


def test_a_firing_notification_reaches_teams_and_email_as_one_notice(runtime, webhooks, smtp):
    status, text = post(runtime, payload([XID, XID_WARNING]))
    assert (status, text) == (200, "delivered through email, webhook:teams")

    [card] = [p.body for p in webhooks.posts]
    assert card["@type"] == "MessageCard"
    assert card["summary"] == "[FIRING:2] GpuXidError gpu 3"
    assert card["title"] == "action: [FIRING:2] GpuXidError gpu 3"
    assert card["themeColor"] == "D13438"  # the notify plugin's colour for "action"
    blocks = card["text"].split("\n\n")
    assert blocks[0] == (
        "FIRING GpuXidError (critical) gpu 3 on gpu01:9101, since 2026-11-30T12:00:00Z\n"
        "GPU 3: critical XID error 79\n"
        "Runbook: Run 'ds01 gpu health'; drain or reset the GPU."
    )
    assert blocks[1].startswith("FIRING GpuXidError (warning) gpu 3 on gpu01:9101, since 2026")

    [mail] = smtp.messages
    assert mail.rcpt_tos == [ADMINS]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert message["Subject"] == "[ds01] action: [FIRING:2] GpuXidError gpu 3"
    assert "Runbook: Run 'ds01 gpu health'" in message.get_content()

    [received] = events(runtime, "alert.received")
    assert received["user"] == "root"
    assert received["details"] == {
        "status": "firing",
        "receiver": "ds01",
        "firing": 2,
        "resolved": 0,
        "alertnames": ["GpuXidError"],
        "subject": "[FIRING:2] GpuXidError gpu 3",
        "delivered": ["email", "webhook:teams"],
        "failed": [],
    }
    delivered = {e["source"] for e in events(runtime, "notify.delivered")}
    assert delivered == {"email", "webhook:teams", "audit-log"}


def test_a_resolved_notification_is_info_and_says_when(runtime, webhooks):
    done = dict(XID, status="resolved", endsAt="2026-11-30T12:10:00+00:00")
    assert post(runtime, payload([done]))[0] == 200
    [card] = [p.body for p in webhooks.posts]
    assert card["summary"] == "[RESOLVED] GpuXidError gpu 3"
    assert card["title"] == "[RESOLVED] GpuXidError gpu 3"  # info: no severity prefix
    assert card["themeColor"] == "0076D7"
    assert card["text"].startswith(
        "RESOLVED GpuXidError (critical) gpu 3 on gpu01:9101, since 2026-11-30T12:00:00Z, "
        "resolved 2026-11-30T12:10:00Z\n"
    )


def test_the_notice_is_one_per_notification_with_its_event_type():
    note = alert_message.notice(alert_message.parse(json.dumps(payload([XID])).encode()), "ops")
    assert (note.user, note.severity, note.event_type) == ("ops", "action", "alert.firing")
    warn = alert_message.parse(json.dumps(payload([XID_WARNING])).encode())
    assert alert_message.severity(warn) == "warning"
    mixed = payload([alert("A", gpu="1"), alert("B", gpu="1"), alert("C"), alert("D")])
    assert alert_message.subject(alert_message.parse(json.dumps(mixed).encode())) == (
        "[FIRING:4] A, B, C +1"
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "expected a JSON object"),
        ({**payload([XID]), "version": "3"}, "version: expected '4'"),
        ({**payload([XID]), "alerts": []}, "alerts: expected a non-empty list"),
        ({**payload([XID]), "status": "exploded"}, "status: expected 'firing' or 'resolved'"),
        (payload([{**XID, "labels": {"alertname": 7}}]), "alerts[0].labels: expected an object"),
        (payload([{**XID, "labels": {"severity": "x"}}]), "alerts[0].labels.alertname: missing"),
        (payload([{**XID, "startsAt": None}]), "alerts[0].startsAt: expected a string"),
        (payload([XID, {**XID, "status": None}]), "alerts[1].status: expected 'firing'"),
    ],
)
def test_a_malformed_payload_is_400_with_the_field_and_logged(runtime, webhooks, caplog, body, why):
    status, text = post(runtime, body)
    assert status == 400
    assert text.startswith("not an Alertmanager webhook payload: ")
    assert why in text
    assert why in caplog.text
    assert webhooks.posts == []
    assert events(runtime, "alert.") == []


def test_a_body_over_the_limit_is_413(runtime, webhooks):
    assert post(runtime, b" " * (MAX_BODY + 1))[0] == 413
    assert webhooks.posts == []


def test_without_a_token_file_only_loopback_is_heard(runtime, webhooks, caplog):
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.1:40000", "[::1]:40000"):
        assert is_loopback(peer), peer
    assert post(runtime, payload([XID]), peer="::1")[0] == 200
    status, text = post(runtime, payload([XID]), peer="10.1.2.3")
    assert status == 403
    assert "only loopback peers without plugins.prometheus.alert_receiver.token_file" in text
    assert "10.1.2.3" in caplog.text
    for peer in ("", "10.1.2.3:9093", "::ffff:10.1.2.3", "localhost.example.org"):
        assert not is_loopback(peer), peer
    [refused] = events(runtime, "alert.refused")
    assert refused["details"]["peer"] == "10.1.2.3"
    assert refused["details"]["status"] == 403
    assert len(webhooks.posts) == 1


def test_with_a_token_file_the_bearer_token_is_required(runtime, tmp_path, webhooks):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    settings = AlertReceiverConfig(token_file=str(token))  # type: ignore[arg-type]
    body = payload([XID])
    # a loopback peer is not enough once there is a token
    assert post(runtime, body, settings)[0] == 401
    assert post(runtime, body, settings, authorization="Bearer wrong")[1] == "wrong bearer token"
    assert post(runtime, body, settings, authorization="Basic czNjcmV0")[0] == 401
    assert post(runtime, body, settings, authorization="Bearer s3cret-tokenX")[0] == 401
    assert post(runtime, body, settings, authorization="bearer s3cret-token")[0] == 200
    assert (
        post(runtime, body, settings, authorization="Bearer s3cret-token", peer="10.0.0.9")[0]
        == 200
    )
    assert [e["details"]["reason"] for e in events(runtime, "alert.refused")] == [
        "a bearer token is required (Authorization: Bearer …)",
        "wrong bearer token",
        "a bearer token is required (Authorization: Bearer …)",
        "wrong bearer token",
    ]
    assert len(webhooks.posts) == 2


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_a_missing_or_empty_token_file_refuses_everything(runtime, tmp_path, caplog, content):
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    settings = AlertReceiverConfig(token_file=str(token))  # type: ignore[arg-type]
    status, text = post(runtime, payload([XID]), settings, authorization="Bearer ")
    assert status == 503
    assert text.startswith(f"plugins.prometheus.alert_receiver.token_file {token}: ")
    assert "cannot check tokens" in caplog.text
    assert len(events(runtime, "alert.refused")) == 1


def test_a_disabled_receiver_is_404(runtime, webhooks):
    assert post(runtime, payload([XID]), AlertReceiverConfig(enabled=False))[0] == 404
    assert webhooks.posts == []


def test_when_every_channel_fails_alertmanager_is_told_to_retry(tmp_config, webhooks):
    section = notify_section(webhooks.url("/status/500"), 1)  # port 1: refused
    path = tmp_config({"plugins": {"notify": section}})
    runtime = load_runtime(str(path), no_plugins=True, extra_plugins=(("notify", ds01_notify),))
    try:
        status, text = post(runtime, payload([XID]))
        assert status == 502
        assert text == "every notify channel failed: email, webhook:teams"
        [received] = events(runtime, "alert.received")
        assert received["details"]["failed"] == ["email", "webhook:teams"]
    finally:
        runtime.close()


def test_nothing_in_a_payload_becomes_markup_and_sizes_are_capped(runtime, webhooks):
    hostile = alert(
        "Gpu[Xid](http://evil.example)",
        summary="<script>x</script> **bold** _it_ `code` # head | pipe \x1b[31mred\x1b[0m\r\nnext",
        runbook="x" * 5000,
        container="[click](http://evil.example)",
        gpu="3",
    )
    many = [alert(f"Alert{n}", severity="warning", summary="s") for n in range(30)]
    assert post(runtime, payload([hostile, *many]))[0] == 200
    [card] = [p.body for p in webhooks.posts]
    text = card["text"]
    assert "\x1b" not in text and "\r" not in text
    unescaped = re.sub(r"\\.", "", text)  # what is left once every escaped character is gone
    assert re.findall(r"[\[\]<>*_`#|~]", unescaped) == []
    assert (
        "\\<script\\>x\\</script\\> \\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\# head \\| pipe" in text
    )
    assert "Gpu\\[Xid\\](http://evil.example)" in text
    assert "container \\[click\\](http://evil.example)" in text
    assert "x" * 999 + "…" in text and "x" * 1000 not in text
    assert "… and 11 more alerts (see Alertmanager)" in text
    assert text.count("\nRunbook: ") == 1  # the 19 others have none
    assert len(card["summary"]) <= alert_message.MAX_SUBJECT


def test_through_a_real_http_server_with_a_token(runtime, tmp_path, webhooks):
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    settings = AlertReceiverConfig(token_file=str(token))  # type: ignore[arg-type]
    body = json.dumps(payload([XID])).encode()
    with receiver_server(runtime, settings) as server:

        def send(headers: dict[str, str], data: bytes = body) -> tuple[int, str]:
            request = urllib.request.Request(server.url(), data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        json_type = {"Content-Type": "application/json"}
        assert send(json_type) == (401, "a bearer token is required (Authorization: Bearer …)")
        assert send({**json_type, "Authorization": "Bearer tok-123"}, b"{}")[0] == 400
        assert send({**json_type, "Authorization": "Bearer tok-123"}) == (
            200,
            "delivered through email, webhook:teams",
        )
    assert [p.body["summary"] for p in webhooks.posts] == ["[FIRING:1] GpuXidError gpu 3"]


def test_through_ds01d_exporter_listener(tmp_path, webhooks, smtp):
    """The prometheus plugin's own HTTP listener dispatches ``POST /alertmanager`` here."""
    token = tmp_path / "token"
    token.write_text("tok-456\n")
    section = notify_section(webhooks.url("/teams"), smtp.port)
    body = json.dumps(payload([XID])).encode()
    with exporter_listener(tmp_path, section, token) as (runtime, url):

        def send(headers: dict[str, str]) -> int:
            request = urllib.request.Request(url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert send({"Authorization": "Bearer nope"}) == 401
        assert send({"Authorization": "Bearer tok-456"}) == 200
        assert [e["details"]["reason"] for e in events(runtime, "alert.refused")] == [
            "wrong bearer token"
        ]
    assert [p.body["summary"] for p in webhooks.posts] == ["[FIRING:1] GpuXidError gpu 3"]
