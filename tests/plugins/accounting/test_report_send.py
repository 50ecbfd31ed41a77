"""``ds01 report monthly --send``: the report arrives by e-mail at a real SMTP server on
loopback (aiosmtpd) and once at a webhook, whoever runs it — root in-process, an admin-group
member (ds01tc) through a real ``ds01-api`` — and a plain user (ds01ta) is refused, exit 2,
before anything is read or sent."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ds01_core.domain.audit_log import EventLog
from ds01_core.framework.runtime import load_runtime
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as
from tests.plugins.accounting.report_store import write_fixture_month
from tests.plugins.accounting.test_report_cli import report
from tests.plugins.notify.notify_servers import Collector, SmtpServer, WebhookServer

SUBJECT = "ds01 usage report 2026-10"


def report_port() -> int:
    """A free loopback port in the report worker's range (198xx)."""
    for port in range(19800, 19900):
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free port in 19800-19899")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=report_port())
    controller.start()
    yield SmtpServer(controller, collector)
    controller.stop()


@pytest.fixture
def webhooks() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


def notify_section(smtp: SmtpServer, webhooks: WebhookServer, utmp: Path) -> dict[str, Any]:
    return {
        "channels": {
            # on (with a utmp of the test's own), but the report never goes there
            "terminal": {"enabled": True, "utmp_path": str(utmp)},
            "container_file": {"enabled": False},
            "email": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "ds01@gpu01.example",
                "addresses": {"root": "root@example.org", "ds01tb": "lab-manager@example.org"},
            },
            "webhooks": [{"name": "team", "url": webhooks.url(), "format": "teams"}],
        },
        "rate_limit": {"max": 0},
    }


@pytest.fixture
def config(tmp_config: Callable[..., Path], tmp_path: Path, smtp, webhooks) -> Path:
    tmp_path.chmod(0o755)
    path = tmp_config(
        {
            "plugins": {
                "notify": notify_section(smtp, webhooks, tmp_path / "utmp"),
                "accounting": {"report": {"recipients": ["root", "ds01tb"]}},
            }
        }
    )
    runtime = load_runtime(str(path))
    try:
        write_fixture_month(runtime)
    finally:
        runtime.close()
    return path


def received(smtp: SmtpServer) -> dict[str, email.message.EmailMessage]:
    out = {}
    for message in smtp.messages:
        parsed = email.message_from_bytes(message.content, policy=email.policy.default)
        [to] = message.rcpt_tos
        out[to] = parsed
    return out


def assert_report_mail(message: Any) -> str:
    assert message["Subject"] == f"[ds01] {SUBJECT}"
    assert message["From"] == "ds01@gpu01.example"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith(f"# {SUBJECT}\n")
    assert "- **GPU-hours**: 46.12" in body
    assert "- **Active users**: 4" in body
    assert "- **Energy**: 27.50 kWh" in body
    assert "| ds01tb |" in body.replace("  ", " ").replace("  ", " ")
    return str(body)


def test_root_sends_it_to_every_recipient_and_once_to_the_webhook(
    config: Path, smtp: SmtpServer, webhooks: WebhookServer
) -> None:
    result = report(config, "--month", "2026-10", "--send", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("period,period_start")  # stdout: the report as asked
    mails = received(smtp)
    assert set(mails) == {"root@example.org", "lab-manager@example.org"}
    for message in mails.values():
        assert_report_mail(message)  # the e-mail's body is the Markdown form, whatever --format
    [post] = webhooks.posts  # once, not once per recipient
    assert post.body["title"] == SUBJECT
    assert post.body["text"].startswith(f"# {SUBJECT}\n")
    assert f"sent: '{SUBJECT}' to root via email: sent to root@example.org" in result.output
    runtime = load_runtime(str(config))
    try:
        delivered = EventLog(runtime.config.paths.event_log_path).query(type_prefix="notify.")
    finally:
        runtime.close()
    sent = sorted(
        (e["user"], e["source"]) for e in delivered if e["details"].get("subject") == SUBJECT
    )
    assert [s for s in sent if s[1] != "audit-log"] == [
        ("ds01tb", "email"),
        ("root", "email"),
        ("root", "webhook:team"),
    ]  # never the terminal, though it is on
    assert "via audit-log" not in result.output
    assert all(e["event_type"] == "notify.delivered" for e in delivered)


def test_a_failed_delivery_exits_1_and_says_so(
    tmp_config: Callable[..., Path], tmp_path: Path, smtp: SmtpServer, webhooks: WebhookServer
) -> None:
    section = notify_section(smtp, webhooks, tmp_path / "utmp")
    section["channels"]["email"]["port"] = report_port()  # nobody listens there
    section["channels"]["webhooks"] = []
    path = tmp_config({"plugins": {"notify": section}})
    result = report(path, "--month", "2026-10", "--send")
    assert result.exit_code == 1, result.output
    assert f"FAILED: '{SUBJECT}' to root via email: SMTP 127.0.0.1:" in result.output
    assert "connection refused" in result.output
    assert smtp.messages == []


@pytest.fixture
def served(config: Path, user_cli: Path, unix_users: Any) -> Iterator[str]:
    with running_api(config) as sock:
        yield sock


def test_an_admin_group_member_sends_it_through_ds01_api(
    served: str, user_cli: Path, admin_member: Any, smtp: SmtpServer, webhooks: WebhookServer
) -> None:
    result = run_as(
        admin_member,
        user_cli,
        ["report", "monthly", "--month", "2026-10", "--send", "--json"],
        env={"DS01_API_SOCKET": served},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total"]["gpu_hours"] == pytest.approx(46.125)
    mails = received(smtp)
    assert set(mails) == {"root@example.org", "lab-manager@example.org"}
    assert_report_mail(mails["root@example.org"])
    assert len(webhooks.posts) == 1
    assert "sent: 'ds01 usage report 2026-10' to ds01tb via email" in result.stderr


def test_a_plain_user_is_refused(
    served: str, user_cli: Path, unix_users: Any, smtp: SmtpServer, webhooks: WebhookServer
) -> None:
    ta = unix_users["ds01ta"]
    for args in (["--month", "2026-10"], ["--month", "2026-10", "--send"]):
        result = run_as(ta, user_cli, ["report", "monthly", *args], env={"DS01_API_SOCKET": served})
        assert result.returncode == 2, result
        assert result.stderr == (
            "Error: this is an admin operation; ds01ta is not in the admin group (ds01-admin)\n"
        )
        assert result.stdout == ""
    assert smtp.messages == [] and webhooks.posts == []


def test_no_channel_reaching_a_recipient_is_a_failure(
    tmp_config: Callable[..., Path], tmp_path: Path, smtp: SmtpServer, webhooks: WebhookServer
) -> None:
    section = notify_section(smtp, webhooks, tmp_path / "utmp")
    section["channels"]["email"]["enabled"] = False
    section["channels"]["webhooks"] = []
    path = tmp_config({"plugins": {"notify": section}})  # only the terminal is on
    result = report(path, "--month", "2026-10", "--send")
    assert result.exit_code == 1, result.output
    assert f"FAILED: '{SUBJECT}' to root via none: no channel reached root" in result.output
