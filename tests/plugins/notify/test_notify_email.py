"""The e-mail channel against a real SMTP server on loopback (aiosmtpd): the message arrives
with the right envelope and headers, STARTTLS and a login from a password file work, and a
dead server fails this channel only."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ssl
import time

import pytest

from ds01_core.domain.model import DeliveryResult, Notice
from ds01_notify.address import add_resolver, resolve_address
from ds01_notify.config import EmailConfig
from ds01_notify.email import EmailChannel
from tests.plugins.notify.conftest import quiet_section
from tests.plugins.notify.notify_servers import Passwords, free_port, make_cert, start_smtp

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NOTICE = Notice(
    "alice",
    "GPU idle",
    "Your container train has been idle for 55m; it stops in 5m.",
    severity="warning",
    container="train",
)


def email_channel(port: int, address: str | None = "alice@example.org", **kw) -> EmailChannel:
    cfg = EmailConfig(enabled=True, host="127.0.0.1", port=port, sender="ds01@gpu01.example", **kw)
    return EmailChannel(cfg, address, "no e-mail address known for alice", lambda: NOW, "gpu01")


def test_the_message_arrives_with_to_subject_and_body(smtp):
    result = email_channel(smtp.port).send(NOTICE)
    assert result == DeliveryResult(
        "email", True, f"sent to alice@example.org via SMTP 127.0.0.1:{smtp.port}"
    )
    [received] = smtp.messages
    assert (received.mail_from, received.rcpt_tos) == ("ds01@gpu01.example", ["alice@example.org"])
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert message["To"] == "alice@example.org"
    assert message["From"] == "ds01@gpu01.example"
    assert message["Subject"] == "[ds01] warning: GPU idle"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-ds01-Container"] == "train"
    assert message["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("Your container train has been idle for 55m; it stops in 5m.\n")
    assert "ds01 on gpu01, container train" in body
    assert "ds01 notify prefs --disable email" in body


def test_a_dead_server_fails_with_a_clear_detail():
    port = free_port()
    started = time.monotonic()
    result = email_channel(port).send(NOTICE)
    assert time.monotonic() - started < 5
    assert result == DeliveryResult(
        "email",
        False,
        f"SMTP 127.0.0.1:{port}: connection refused (is the mail server running?)",
    )


def test_no_address_is_a_failed_delivery_not_an_error(smtp):
    result = email_channel(smtp.port, address=None).send(NOTICE)
    assert result == DeliveryResult("email", False, "no e-mail address known for alice")
    assert smtp.messages == []


@pytest.fixture
def tls_smtp(openssl, tmp_path):
    cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = start_smtp(
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=Passwords("ds01-mailer", "s3cret pass"),
    )
    yield server, cert
    server.controller.stop()


def test_starttls_and_a_login_from_the_password_file(tls_smtp, tmp_path):
    server, cert = tls_smtp
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret pass\n")
    secret.chmod(0o600)
    send = email_channel(
        server.port,
        starttls=True,
        ca_file=str(cert),
        username="ds01-mailer",
        password_file=str(secret),
    ).send
    assert send(NOTICE).delivered
    assert [m.login for m in server.messages] == ["ds01-mailer"]


def test_a_wrong_password_or_an_unreadable_file_fails_clearly(tls_smtp, tmp_path):
    server, cert = tls_smtp
    secret = tmp_path / "smtp-password"
    secret.write_text("wrong\n")
    common = {"starttls": True, "ca_file": str(cert), "username": "ds01-mailer"}
    result = email_channel(server.port, password_file=str(secret), **common).send(NOTICE)
    assert not result.delivered
    assert "login refused: 535" in result.detail
    missing = str(tmp_path / "missing")
    result = email_channel(server.port, password_file=missing, **common).send(NOTICE)
    assert result.detail == f"cannot read password_file {missing}: No such file or directory"
    assert server.messages == []


def test_an_untrusted_certificate_is_refused(tls_smtp):
    server, _cert = tls_smtp
    result = email_channel(server.port, starttls=True).send(NOTICE)
    assert not result.delivered
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail
    assert server.messages == []


# -- which address ----------------------------------------------------------------------------


def test_address_comes_from_the_map_then_resolvers_then_the_pattern(notify_runtime):
    runtime = notify_runtime(quiet_section())
    cfg = EmailConfig(
        address_pattern="{user}@example.org", addresses={"Alice": "a.smith@example.org"}
    )
    assert resolve_address(runtime, cfg, "alice")[0] == "a.smith@example.org"
    assert resolve_address(runtime, cfg, "bob") == (
        "bob@example.org",
        "plugins.notify.channels.email.address_pattern",
    )
    directory = {"bob": "robert@dept.example.org", "carol": "not an address"}

    def broken(user: str) -> str | None:
        raise LookupError("directory cache unreadable")

    add_resolver(runtime, broken)
    add_resolver(runtime, directory.get)
    assert resolve_address(runtime, cfg, "bob")[0] == "robert@dept.example.org"
    assert resolve_address(runtime, cfg, "carol")[0] == "carol@example.org"
    assert resolve_address(runtime, EmailConfig(), "dave") == (
        None,
        "no e-mail address known for dave",
    )


def test_through_the_plugin_with_a_pattern(notify_runtime, smtp):
    from ds01_notify import deliver

    runtime = notify_runtime(
        quiet_section(
            email={
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "ds01@example.org",
                "address_pattern": "{user}@example.org",
            }
        )
    )
    assert deliver(runtime, NOTICE) == [
        DeliveryResult("email", True, f"sent to alice@example.org via SMTP 127.0.0.1:{smtp.port}")
    ]
    assert smtp.messages[0].rcpt_tos == ["alice@example.org"]
