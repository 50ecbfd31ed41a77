"""The e-mail channel: one message per notice over SMTP (optionally STARTTLS and a login).

The password is read from ``password_file`` at send time, so it is never in the configuration
file, in ``ds01 config show`` or in a process's memory longer than one send. Every socket
operation has ``timeout``; a dead or slow server fails this channel only.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage

import attrs

from ds01_core.api import DeliveryResult, Notice
from ds01_notify.config import EmailConfig
from ds01_notify.text import clean, title


def read_secret(path: str) -> str:
    """The first line of a root-only file (a trailing newline is not part of the secret)."""
    with open(path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\r\n")


def build_message(
    cfg: EmailConfig, notice: Notice, to: str, host: str, now: dt.datetime
) -> EmailMessage:
    """The message as sent: plain text, marked auto-generated so that no one auto-replies."""
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = to
    msg["Subject"] = cfg.subject_prefix + title(notice)
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid(domain=cfg.sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-ds01-Severity"] = notice.severity
    if notice.container:
        msg["X-ds01-Container"] = clean(notice.container).replace("\n", " ")
    about = f", container {clean(notice.container)}" if notice.container else ""
    msg.set_content(
        f"{clean(notice.message)}\n\n-- \nds01 on {host}{about}\n"
        "You get this because e-mail is on in your ds01 notification preferences; "
        "turn it off with: ds01 notify prefs --disable email\n"
    )
    return msg


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def describe_error(exc: BaseException, timeout: float) -> str:
    """A reader's account of an SMTP failure."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the mail server running?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"recipient refused: {exc.recipients}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


@attrs.frozen
class EmailChannel:
    """Sends the notice to ``address`` (resolved before sending, by :mod:`ds01_notify.address`)."""

    cfg: EmailConfig
    address: str | None
    why_no_address: str = ""
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    host: str = attrs.Factory(socket.gethostname)

    name = "email"
    family = "email"

    @property
    def timeout(self) -> float:
        return float(self.cfg.timeout)

    def send(self, notice: Notice) -> DeliveryResult:
        if not self.address:
            return DeliveryResult(self.name, False, self.why_no_address or "no address")
        cfg = self.cfg
        where = f"SMTP {cfg.host}:{cfg.port}"
        try:
            password = read_secret(cfg.password_file) if cfg.password_file else None
        except OSError as exc:
            return DeliveryResult(
                self.name, False, f"cannot read password_file {cfg.password_file}: {exc.strerror}"
            )
        message = build_message(cfg, notice, self.address, self.host, self.now())
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=cfg.ca_file))
                if cfg.username and password is not None:
                    smtp.login(cfg.username, password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            return DeliveryResult(self.name, False, f"{where}: {describe_error(exc, self.timeout)}")
        return DeliveryResult(self.name, True, f"sent to {self.address} via {where}")
