"""The shipped Alertmanager configuration, checked by Debian's amtool (syntax, routing) and run
in a real Alertmanager 0.25 (inhibition), and the whole path an alert takes to the admins: a
real Prometheus with ds01's rules scrapes a firing condition, a real Alertmanager e-mails the
admins (an SMTP server on loopback) and posts to ds01's receiver, whose notice the notify
plugin turns into a Teams MessageCard (an HTTP server on loopback); then the condition clears
and the resolved notifications follow."""

from __future__ import annotations

import email
import email.policy
import json
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.waiting import wait_until
from tests.plugins.notify.notify_servers import SmtpServer, WebhookServer, start_smtp
from tests.plugins.prometheus.alerting import (
    ADMINS,
    ALERTMANAGER,
    Exposition,
    binary,
    events,
    exporter_listener,
    notify_section,
    render_alertmanager,
    render_rules,
    run,
    start_alertmanager,
    start_prometheus,
)

SHIPPED = ALERTMANAGER / "alertmanager.yml"
OPS = "ops@example.org"  # the notice user's address, as the notify plugin knows it


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
def token(tmp_path: Path) -> Path:
    path = tmp_path / "alert-receiver.token"
    path.write_text("t0ken-for-alertmanager\n")
    return path


def mails(smtp: SmtpServer, to: str) -> list[EmailMessage]:
    found = []
    for received in list(smtp.messages):
        if to in received.rcpt_tos:
            message = email.message_from_bytes(received.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


def test_amtool_accepts_the_shipped_configuration():
    result = run([binary("amtool"), "check-config", str(SHIPPED)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 4 inhibit rules" in result.stdout
    assert " - 1 templates" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=GpuXidError", "gpu=3"], "admins-critical"),
        (["severity=warning", "alertname=GpuXidError", "gpu=3"], "ds01"),
        (["severity=info", "alertname=GpuAllocatedIdle"], "ds01"),
        (["alertname=SomethingElse"], "ds01"),
    ],
)
def test_routing_critical_to_email_and_ds01_the_rest_to_ds01(labels, receiver):
    result = run(
        [
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={SHIPPED}",
            f"--verify.receivers={receiver}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_the_critical_receiver_mails_and_calls_ds01_the_other_only_ds01():
    receivers = {r["name"]: r for r in yaml.safe_load(SHIPPED.read_text())["receivers"]}
    assert set(receivers) == {"ds01", "admins-critical"}
    assert set(receivers["admins-critical"]) == {"name", "email_configs", "webhook_configs"}
    assert set(receivers["ds01"]) == {"name", "webhook_configs"}
    for receiver in receivers.values():
        [hook] = receiver["webhook_configs"]
        assert hook["url"] == "http://127.0.0.1:9101/alertmanager"
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"]["type"] == "Bearer"


def _alert(name: str, severity: str, topic: str, source: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "topic": topic,
            "source": source,
            "job": "ds01",
            **labels,
        },
        "annotations": {"summary": f"{name} {labels}", "runbook": "look"},
    }


@pytest.mark.integration
def test_inhibitions_in_a_real_alertmanager(tmp_path, smtp, webhooks, token):
    config = render_alertmanager(tmp_path, smtp.port, webhooks.url("/alertmanager"), token)
    gpu = {"instance": "h:9101"}
    posted = [
        # critical GpuXidError holds back the warning of the same alert and GPU, not GpuDrained
        _alert("GpuXidError", "critical", "gpu-health", "ds01d", gpu="3", **gpu),
        _alert("GpuXidError", "warning", "gpu-health", "ds01d", gpu="3", **gpu),
        _alert("GpuDrained", "warning", "gpu-health", "ds01d", gpu="3", **gpu),
        # a GPU off the bus holds back its other alerts
        _alert("GpuFellOffBus", "critical", "gpu-health", "ds01d", gpu="5", **gpu),
        _alert("GpuEccUncorrected", "critical", "gpu-health", "ds01d", gpu="5", **gpu),
        # ds01d down holds back what comes from its metrics (same job and instance)
        _alert("Ds01DaemonDown", "critical", "daemon", "prometheus", instance="h2:9101"),
        _alert("Ds01GatewayDown", "critical", "daemon", "ds01d", instance="h2:9101"),
        # no GPU readable on h3 holds back h3's per-GPU alerts, not h4's in the same group
        _alert("GpusUnavailable", "critical", "gpu-health", "ds01d", instance="h3:9101"),
        _alert("GpuOverheating", "warning", "gpu-health", "ds01d", gpu="0", instance="h3:9101"),
        _alert("GpuDrained", "warning", "gpu-health", "ds01d", gpu="0", instance="h4:9101"),
    ]
    manager = start_alertmanager(config, tmp_path)
    try:
        request = urllib.request.Request(
            f"{manager.url}/api/v2/alerts",
            data=json.dumps(posted).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        wait_until(lambda: len(webhooks.posts) >= 6, 30, "six notifications to ds01")
        wait_until(lambda: len(mails(smtp, ADMINS)) >= 4, 30, "four critical e-mails")
    finally:
        manager.stop()
    delivered = sorted(
        sorted(
            (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["instance"])
            for a in post.body["alerts"]
        )
        for post in webhooks.posts
    )
    assert delivered == [
        [("Ds01DaemonDown", "critical", "h2:9101")],
        [("GpuDrained", "warning", "h4:9101")],
        [("GpuDrained", "warning", "h:9101")],
        [("GpuFellOffBus", "critical", "h:9101")],
        [("GpuXidError", "critical", "h:9101")],
        [("GpusUnavailable", "critical", "h3:9101")],
    ]
    assert {p.headers["Authorization"] for p in webhooks.posts} == {"Bearer t0ken-for-alertmanager"}
    subjects = sorted(m["Subject"] for m in mails(smtp, ADMINS))
    assert subjects == [
        "[ds01] [FIRING:1] Ds01DaemonDown on h2:9101",
        "[ds01] [FIRING:1] GpuFellOffBus gpu 5 on h:9101",
        "[ds01] [FIRING:1] GpuXidError gpu 3 on h:9101",
        "[ds01] [FIRING:1] GpusUnavailable on h3:9101",
    ]


FIRING = """\
# TYPE ds01_gpu_health_problem gauge
ds01_gpu_health_problem{gpu="3",reason="xid"} 1
# TYPE ds01_gpu_healthy gauge
ds01_gpu_healthy{gpu="3"} 0
# TYPE ds01_gpu_last_xid gauge
ds01_gpu_last_xid{gpu="3"} 79
# TYPE ds01_gpus_available gauge
ds01_gpus_available 1
# TYPE ds01_gateway_up gauge
ds01_gateway_up 1
# TYPE ds01_last_cycle_timestamp_seconds gauge
ds01_last_cycle_timestamp_seconds NOW
"""
CLEARED = FIRING.replace('reason="xid"} 1', 'reason="xid"} 0').replace(
    'ds01_gpu_healthy{gpu="3"} 0', 'ds01_gpu_healthy{gpu="3"} 1'
)


def cards(webhooks: WebhookServer, summary: str) -> list[dict[str, Any]]:
    return [p.body for p in list(webhooks.posts) if p.body.get("summary") == summary]


@pytest.mark.integration
def test_a_firing_alert_reaches_email_and_teams_then_resolves(tmp_path, smtp, webhooks, token):
    """Alertmanager posts to ds01d's exporter listener (the prometheus plugin's server), whose
    receiver hands the notice to the notify plugin; the metrics come from a stand-in exporter
    with the catalogue's names (GPU faults cannot be injected into ds01d yet)."""
    section = notify_section(webhooks.url("/teams"), smtp.port, user="root")
    section["channels"]["email"]["addresses"] = {"root": OPS}
    exposition = Exposition(FIRING)
    servers = []
    try:
        with exporter_listener(tmp_path, section, token) as (runtime, receiver_url):
            config = render_alertmanager(tmp_path, smtp.port, receiver_url, token)
            manager = start_alertmanager(config, tmp_path)
            servers.append(manager)
            # a missing target is "ds01d down" after 2m: kept, so that it never fires here
            rules = render_rules(tmp_path, keep=("Ds01DaemonDown",))
            servers.append(start_prometheus(tmp_path, rules, exposition.port, manager.port))
            instance = f"127.0.0.1:{exposition.port}"

            # firing: Alertmanager's own e-mail to the admins ...
            [mail] = wait_until(lambda: mails(smtp, ADMINS), 90, "the admins' e-mail")
            assert mail["Subject"] == f"[ds01] [FIRING:1] GpuXidError gpu 3 on {instance}"
            body = text_of(mail)
            assert f"GpuXidError (critical) gpu 3 on {instance}\n" in body
            assert "  GPU 3: critical XID error 79\n" in body
            assert "  Runbook: Run 'ds01 gpu health' for the code and its meaning" in body
            # ... and the Teams card, through ds01's receiver and the notify plugin
            [card] = wait_until(
                lambda: cards(webhooks, "[FIRING:1] GpuXidError gpu 3"), 30, "the Teams card"
            )
            assert card["@type"] == "MessageCard"
            assert card["@context"] == "https://schema.org/extensions"
            assert card["title"] == "action: [FIRING:1] GpuXidError gpu 3"
            assert card["themeColor"] == "D13438"
            first, summary, runbook = card["text"].split("\n")[:3]
            assert first.startswith(f"FIRING GpuXidError (critical) gpu 3 on {instance}, since ")
            assert summary == "GPU 3: critical XID error 79"
            assert runbook.startswith(
                "Runbook: Run 'ds01 gpu health' for the code and its meaning, and "
                "'dmesg \\| grep -i xid' for the process;"
            )
            # the notice's own e-mail to the notice user
            [notice_mail] = wait_until(lambda: mails(smtp, OPS), 30, "the notice's e-mail")
            assert notice_mail["Subject"] == "[ds01] action: [FIRING:1] GpuXidError gpu 3"

            # the condition clears: resolved, both ways
            exposition.text = CLEARED
            resolved = wait_until(
                lambda: [m for m in mails(smtp, ADMINS) if "[RESOLVED]" in m["Subject"]],
                90,
                "the resolved e-mail",
            )
            assert resolved[0]["Subject"] == f"[ds01] [RESOLVED] GpuXidError gpu 3 on {instance}"
            assert "Resolved:\n" in text_of(resolved[0])
            [done] = wait_until(
                lambda: cards(webhooks, "[RESOLVED] GpuXidError gpu 3"), 30, "the resolved card"
            )
            assert done["themeColor"] == "0076D7"
            assert done["text"].startswith(f"RESOLVED GpuXidError (critical) gpu 3 on {instance}")
            # written once every channel is done (the card may come before the e-mail)
            received = wait_until(
                lambda: [e["details"]["status"] for e in events(runtime, "alert.received")][1:],
                30,
                "the resolved notification's alert.received event",
            )
            assert received == ["resolved"]
    finally:
        for server in reversed(servers):
            server.stop()
        exposition.close()
    # the warning of the same XID never went out (it steps aside while the critical fires)
    assert all("(warning)" not in p.body.get("text", "") for p in webhooks.posts)
