"""The ``plugins.prometheus:`` section: where the exporter listens and who may read it.

Types and unknown keys are checked by the core's converter; :meth:`PrometheusConfig.config_problems`
adds the checks that span fields (the address, TLS and basic auth in pairs) and refuses, fail
closed, a listener off loopback that neither encrypts nor authenticates, unless the admin says
``allow_insecure_remote: true``. Every problem is named by its path
(``plugins.prometheus.listen: …``) with the rest of the file's.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ds01_core.api import AbsPath
from ds01_prometheus.alert_receiver_config import AlertReceiverConfig

#: ``(path inside the section, message)`` as the core's ``config_problems`` protocol wants it
Problem = tuple[tuple[str | int, ...], str]

DEFAULT_LISTEN = "127.0.0.1:9101"
#: Docker's root directory, exported beside ds01's state and log directories by default
DOCKER_ROOT = "/var/lib/docker"

_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\]:(?P<port>[0-9]+)$")
_PLAIN = re.compile(r"^(?P<host>[^:\[\]]*):(?P<port>[0-9]+)$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


class ListenError(ValueError):
    """``listen`` is not ``host:port`` (an IPv6 address in brackets)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9101`` → ``("127.0.0.1", 9101)``; ``[::1]:9101`` → ``("::1", 9101)``.

    An empty host (``:9101``) means every IPv4 address, as Python's servers take it.

    :raises ListenError: with a message for the admin.
    """
    match = _BRACKETED.match(text) or _PLAIN.match(text)
    if match is None:
        raise ListenError(
            f"expected host:port (an IPv6 address in brackets: [::1]:9101), got {text!r}"
        )
    host, port = match["host"], int(match["port"])
    if port > 65535:  # 0: a free port the kernel picks (tests)
        raise ListenError(f"port {port} is out of range (1-65535)")
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ListenError(f"{host!r} in brackets is not an IPv6 address") from None
    elif host and not _HOSTNAME.match(host):
        raise ListenError(f"{host!r} is not a host name or an IPv4 address")
    return host, port


def is_loopback(host: str) -> bool:
    """Only this machine can connect: ``localhost`` or a loopback address (not ``0.0.0.0``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@attrs.define
class PrometheusConfig:
    """``plugins.prometheus``: the exporter's listener (served by ``ds01d``) and what it exports.

    ``listen`` off loopback needs TLS (``tls_cert_file`` + ``tls_key_file``) or basic auth
    (``basic_auth_username`` + ``basic_auth_password_file``, a root-only file holding the
    password), or ``allow_insecure_remote: true`` (e.g. behind a reverse proxy on a private
    network). ``filesystems``: the paths whose free space is exported; unset, ds01's state and
    log directories and Docker's root directory.
    """

    listen: str = DEFAULT_LISTEN
    tls_cert_file: AbsPath | None = None
    tls_key_file: AbsPath | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: AbsPath | None = None
    allow_insecure_remote: bool = False
    filesystems: list[AbsPath] | None = None
    alert_receiver: AlertReceiverConfig = attrs.Factory(AlertReceiverConfig)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def basic_auth(self) -> bool:
        return bool(self.basic_auth_username and self.basic_auth_password_file)

    def address(self) -> tuple[str, int]:
        """The host and port to bind (the section is valid: checked at load)."""
        return parse_listen(self.listen)

    def filesystem_paths(self, state_dir: str, log_dir: str) -> list[str]:
        """The paths whose free space is exported, the defaults filled in."""
        if self.filesystems is not None:
            return list(self.filesystems)
        return [state_dir, log_dir, DOCKER_ROOT]

    def config_problems(self) -> list[Problem]:
        """Cross-field checks, reported by the core with their paths (``plugins.prometheus.…``)."""
        problems: list[Problem] = []
        host: str | None = None
        try:
            host, _port = parse_listen(self.listen)
        except ListenError as exc:
            problems.append((("listen",), str(exc)))
        problems += _pair(
            ("tls_cert_file", self.tls_cert_file),
            ("tls_key_file", self.tls_key_file),
            "TLS needs both a certificate and its key",
        )
        problems += _pair(
            ("basic_auth_username", self.basic_auth_username),
            ("basic_auth_password_file", self.basic_auth_password_file),
            "basic auth needs both a user name and a password file",
        )
        if self.basic_auth_username is not None and not self.basic_auth_username:
            problems.append((("basic_auth_username",), "must not be empty"))
        elif self.basic_auth_username and ":" in self.basic_auth_username:
            problems.append((("basic_auth_username",), "must not contain ':'"))
        secured = self.tls or self.basic_auth
        remote = host is not None and not is_loopback(host)
        if remote and not secured and not self.allow_insecure_remote:
            shown = host or "every address"
            problems.append(
                (
                    ("listen",),
                    f"{shown} is reachable from other machines, and the exporter would serve "
                    "it without TLS or basic auth: set tls_cert_file and tls_key_file, or "
                    "basic_auth_username and basic_auth_password_file, or "
                    "allow_insecure_remote: true (e.g. behind a reverse proxy)",
                )
            )
        return problems


def _pair(first: tuple[str, object], second: tuple[str, object], what: str) -> list[Problem]:
    """Two fields that go together: the missing one named when only the other is set."""
    (name_a, a), (name_b, b) = first, second
    if (a is None) == (b is None):
        return []
    missing, given = (name_b, name_a) if b is None else (name_a, name_b)
    return [((missing,), f"{what}: {given} is set, {missing} is not")]
