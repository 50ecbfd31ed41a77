"""``ds01 admin doctor``'s checks of ds01-web: TLS, the sign-in methods' set-up, the SSO secret.

What an admin gets wrong on the first day shows here, before a user finds it: a listener off
loopback without TLS (browsers drop the ``Secure`` session cookie and passwords travel in
clear), a certificate that expires soon, ``pam`` enabled without its PAM service file, ``ldap``
enabled without directory servers, an OpenID client secret others can read.

Only where ds01-web is set up — its unit installed or the program running: a server with the
plugin installed but not serving pages is told so, which is not a problem (as the core does
for the optional dcgm-exporter).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

from ds01_core.api import DoctorFinding, Runtime
from ds01_web.app import settings_of

PAM_DIR = Path("/etc/pam.d")
UNIT_FILES = tuple(
    Path(d) / "ds01-web.service"
    for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
)
#: how the program shows in a process's command line (the console script, or the module)
PROGRAM_MARKS = (b"ds01-web", b"ds01_web.main")
#: a certificate expiring sooner than this is a problem now
CERT_WARN_DAYS = 21


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_tls(runtime: Runtime, now: dt.datetime) -> DoctorFinding:
    settings = settings_of(runtime)
    subject = f"ds01-web {settings.listen}:{settings.port}"
    if settings.tls_cert is None:
        if _loopback(settings.listen):
            return DoctorFinding(
                "web tls", subject, True, "on loopback: the TLS reverse proxy in front serves HTTPS"
            )
        return DoctorFinding(
            "web tls",
            subject,
            False,
            "listens off loopback without TLS: browsers will not keep the Secure session "
            "cookie, and passwords and tokens would travel in clear",
            "set plugins.web.tls_cert and tls_key, or listen on 127.0.0.1 behind a TLS reverse "
            "proxy (docs/web.md#tls)",
        )
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(Path(settings.tls_cert).read_bytes())
    except (OSError, ValueError) as exc:
        return DoctorFinding(
            "web tls",
            settings.tls_cert,
            False,
            f"cannot read the certificate: {exc}",
            "give plugins.web.tls_cert a PEM certificate root can read",
        )
    left = cert.not_valid_after_utc - now
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    if left.total_seconds() <= 0:
        return DoctorFinding(
            "web tls", settings.tls_cert, False, f"the certificate expired on {until}",
            "renew it, then: systemctl restart ds01-web",
        )  # fmt: skip
    if left < dt.timedelta(days=CERT_WARN_DAYS):
        return DoctorFinding(
            "web tls", settings.tls_cert, False,
            f"the certificate expires on {until}, in {left.days} day(s)",
            "renew it, then: systemctl restart ds01-web",
        )  # fmt: skip
    return DoctorFinding("web tls", settings.tls_cert, True, f"valid until {until}")


def check_sign_in(runtime: Runtime) -> list[DoctorFinding]:
    login = settings_of(runtime).login
    found = []
    if "pam" in login.methods:
        pam_file = PAM_DIR / login.pam_service
        found.append(
            DoctorFinding("web sign-in", str(pam_file), True, "the PAM service is installed")
            if pam_file.is_file()
            else DoctorFinding(
                "web sign-in",
                str(pam_file),
                False,
                f"plugins.web.login.methods has pam, but there is no PAM service "
                f"{login.pam_service!r}: nobody can sign in with a password",
                f"install -m 0644 packaging/pam.d/ds01-web {pam_file}",
            )
        )
    if "ldap" in login.methods:
        servers = getattr(runtime.plugin_config("ldap"), "servers", None)
        found.append(
            DoctorFinding("web sign-in", "plugins.ldap", True, f"binds to {', '.join(servers)}")
            if servers
            else DoctorFinding(
                "web sign-in",
                "plugins.ldap",
                False,
                "plugins.web.login.methods has ldap, but plugins.ldap names no servers (or the "
                "LDAP plugin is not active): LDAP sign-ins all fail",
                "set plugins.ldap.servers (docs/web-sign-in.md), or take ldap out of the methods",
            )
        )
    if login.oidc is not None:
        found.append(_check_secret(login.oidc.client_secret_file))
    return found


def _check_secret(path: str) -> DoctorFinding:
    try:
        info = os.stat(path)
    except OSError as exc:
        return DoctorFinding(
            "web sign-in", path, False, f"the OpenID client secret cannot be read: {exc}",
            "write the secret the provider gave into it, mode 0600, owned by root",
        )  # fmt: skip
    if info.st_uid != 0 or stat.S_IMODE(info.st_mode) & 0o077:
        return DoctorFinding(
            "web sign-in", path, False,
            f"the OpenID client secret is mode {stat.S_IMODE(info.st_mode):04o}, owner uid "
            f"{info.st_uid}: others may read it",
            f"chown root: {path} && chmod 0600 {path}",
        )  # fmt: skip
    return DoctorFinding("web sign-in", path, True, "the OpenID client secret is root's alone")


def set_up_here() -> str | None:
    """Where ds01-web shows it is set up on this host (its unit file, or a running
    process), or None."""
    for unit in UNIT_FILES:
        if unit.is_file():
            return str(unit)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            words = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if any(mark in word for word in words[:3] for mark in PROGRAM_MARKS):
            return f"process {proc.name}"
    return None


def doctor_checks(runtime: Runtime) -> list[DoctorFinding]:
    """TLS first, then each enabled sign-in method's set-up — where ds01-web is set up."""
    if set_up_here() is None:
        return [
            DoctorFinding(
                "web",
                "ds01-web",
                True,
                "not set up here (no ds01-web.service, no ds01-web running): the pages and the "
                "REST API are optional (docs/web.md says how to install them)",
            )
        ]
    return [check_tls(runtime, dt.datetime.now(dt.UTC)), *check_sign_in(runtime)]


__all__ = ["doctor_checks"]
