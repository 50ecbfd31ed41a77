"""The ``plugins.notify:`` configuration section and its checks.

Types and unknown keys are checked by the core's converter. The checks that span fields (a
webhook needs exactly one of ``url`` and ``url_file``, an address pattern must name
``{user}`` …) are returned by ``config_problems``; the core reports each with its full path
(``plugins.notify.channels.webhooks[0].url: …``) like any other configuration problem.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from typing import Literal

import attrs

from ds01_core.api import ByteSize, Duration

#: The channel families an admin enables and a user chooses among, in delivery order.
CHANNELS: tuple[str, ...] = ("terminal", "container_file", "email", "webhook")

WebhookFormat = Literal["generic", "slack", "teams"]

_WEBHOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@attrs.define
class TerminalConfig:
    """Messages on every terminal the user has open, like ``write(1)``."""

    enabled: bool = True
    utmp_path: str = "/var/run/utmp"
    tty_dir: str = "/dev"
    #: used when a terminal does not say how wide it is (a serial line, a pipe)
    default_width: int = 80
    #: how long to wait for a terminal whose output is stalled (Ctrl-S, a hung ssh)
    timeout: Duration = Duration(2)


@attrs.define
class ContainerFileConfig:
    """A line appended to a file inside the container the notice is about."""

    enabled: bool = True
    path: str = "/workspace/.ds01-alerts"
    #: the file keeps its newest lines within this size
    max_bytes: ByteSize = ByteSize(1024 * 1024)
    timeout: Duration = Duration(10)


@attrs.define
class EmailConfig:
    """E-mail over SMTP; the password lives in a root-only file, never in this one."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    #: CA bundle for STARTTLS with a private CA (default: the system's)
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    sender: str = "ds01@localhost"
    #: e.g. ``{user}@example.org``; empty: only users listed in ``addresses`` get e-mail
    address_pattern: str = ""
    addresses: dict[str, str] = attrs.Factory(dict)
    subject_prefix: str = "[ds01] "
    timeout: Duration = Duration(10)


@attrs.define
class WebhookConfig:
    """One JSON endpoint (a Slack or Teams incoming webhook, or anything taking a POST)."""

    name: str = ""
    url: str = ""
    #: a root-only file holding the URL, for webhooks whose URL is the secret (Slack, Teams)
    url_file: str | None = None
    format: WebhookFormat = "generic"
    headers: dict[str, str] = attrs.Factory(dict)
    enabled: bool = True
    timeout: Duration = Duration(10)


@attrs.define
class ChannelsConfig:
    terminal: TerminalConfig = attrs.Factory(TerminalConfig)
    container_file: ContainerFileConfig = attrs.Factory(ContainerFileConfig)
    email: EmailConfig = attrs.Factory(EmailConfig)
    webhooks: list[WebhookConfig] = attrs.Factory(list)


@attrs.define
class RateLimitConfig:
    """At most ``max`` notices per user in any window of ``per``; ``max: 0`` means no limit."""

    max: int = 10
    per: Duration = Duration(3600)


@attrs.define
class NotifyConfig:
    """``plugins.notify``: which channels the admin enables, and how often a user may be told."""

    channels: ChannelsConfig = attrs.Factory(ChannelsConfig)
    rate_limit: RateLimitConfig = attrs.Factory(RateLimitConfig)

    def config_problems(self) -> list[Problem]:
        """Cross-field checks, reported by the core with their paths (``plugins.notify.…``)."""
        return check(self)

    def enabled_channels(self) -> list[str]:
        """The channel families the admin turned on (``webhook``: at least one enabled)."""
        on = {
            "terminal": self.channels.terminal.enabled,
            "container_file": self.channels.container_file.enabled,
            "email": self.channels.email.enabled,
            "webhook": any(w.enabled for w in self.channels.webhooks),
        }
        return [name for name in CHANNELS if on[name]]


# -- checks -----------------------------------------------------------------------------------

Problem = tuple[tuple[str | int, ...], str]


def bad_address(address: str) -> str | None:
    """Why ``address`` cannot be a recipient (None when it can): one ``local@domain`` with no
    spaces or line breaks, so nothing can be smuggled into a header."""
    if not address or any(c.isspace() or ord(c) < 32 for c in address):
        return f"expected an address like alice@example.org, got {address!r}"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain.strip(".") or any(c in address for c in '<>,;"()'):
        return f"expected an address like alice@example.org, got {address!r}"
    return None


def check_pattern(pattern: str) -> str | None:
    """Why an ``address_pattern`` is unusable (None when it is fine)."""
    if "{user}" not in pattern:
        return f"must contain {{user}}, e.g. '{{user}}@example.org', got {pattern!r}"
    try:
        sample = pattern.format(user="alice")
    except (KeyError, IndexError, ValueError) as exc:
        return f"only {{user}} may be used in the pattern ({exc}), got {pattern!r}"
    return bad_address(sample)


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a webhook's (None when it can)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "expected an http:// or https:// URL"
    return None


def _check_email(cfg: EmailConfig) -> list[Problem]:
    problems: list[Problem] = []
    base = ("channels", "email")
    if not 0 < cfg.port < 65536:
        problems.append(((*base, "port"), f"must be a TCP port (1-65535), got {cfg.port}"))
    if cfg.enabled and not cfg.host.strip():
        problems.append(((*base, "host"), "required when e-mail is enabled"))
    message = bad_address(cfg.sender)
    if message:
        problems.append(((*base, "sender"), message))
    if cfg.address_pattern:
        message = check_pattern(cfg.address_pattern)
        if message:
            problems.append(((*base, "address_pattern"), message))
    for user, address in cfg.addresses.items():
        message = bad_address(address)
        if message:
            problems.append(((*base, "addresses", user), message))
    if cfg.username is not None and not cfg.password_file:
        problems.append(
            (
                (*base, "password_file"),
                "required with username: a root-only file holding the password "
                "(never the password itself in this file)",
            )
        )
    elif cfg.password_file and cfg.username is None:
        problems.append(((*base, "username"), "required with password_file"))
    return problems


def _check_webhooks(webhooks: list[WebhookConfig]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, hook in enumerate(webhooks):
        base: tuple[str | int, ...] = ("channels", "webhooks", index)
        if not _WEBHOOK_NAME.match(hook.name):
            problems.append(
                ((*base, "name"), f"expected a short name (a-z, 0-9, _ and -), got {hook.name!r}")
            )
        elif hook.name in seen:
            problems.append(((*base, "name"), f"{hook.name!r} names two webhooks"))
        seen.add(hook.name)
        if bool(hook.url) == bool(hook.url_file):
            problems.append(((*base, "url"), "give exactly one of url and url_file"))
        elif hook.url:
            message = check_url(hook.url)
            if message:
                problems.append(((*base, "url"), message))
        for key, value in hook.headers.items():
            if not _HEADER_NAME.match(key) or "\n" in value or "\r" in value:
                problems.append(((*base, "headers", key), "not a valid HTTP header"))
        if hook.timeout <= 0:
            problems.append(((*base, "timeout"), "must be greater than 0"))
    return problems


def check(cfg: NotifyConfig) -> list[Problem]:
    """Cross-field problems as (path inside the section, message); empty when all is well."""
    problems: list[Problem] = []
    channels = cfg.channels
    terminal = channels.terminal
    if not posixpath.isabs(terminal.tty_dir):
        problems.append((("channels", "terminal", "tty_dir"), "must be an absolute path"))
    if terminal.default_width < 20:
        problems.append((("channels", "terminal", "default_width"), "must be at least 20"))
    path = channels.container_file.path
    if not posixpath.isabs(path) or posixpath.normpath(path) != path or path == "/":
        problems.append(
            (
                ("channels", "container_file", "path"),
                f"expected an absolute, normalised file path like /workspace/.ds01-alerts, "
                f"got {path!r}",
            )
        )
    for where, timeout in (
        (("channels", "terminal", "timeout"), terminal.timeout),
        (("channels", "container_file", "timeout"), channels.container_file.timeout),
        (("channels", "email", "timeout"), channels.email.timeout),
    ):
        if timeout <= 0:
            problems.append((where, "must be greater than 0"))
    problems += _check_email(channels.email)
    problems += _check_webhooks(channels.webhooks)
    if cfg.rate_limit.max < 0:
        problems.append((("rate_limit", "max"), "must be 0 (no limit) or more"))
    if cfg.rate_limit.per <= 0:
        problems.append((("rate_limit", "per"), "must be greater than 0"))
    return problems
