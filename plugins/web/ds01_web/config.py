"""The ``plugins.web:`` configuration section: where ``ds01-web`` listens, its TLS files, how
long a personal token may live, the per-user rate limit, sessions and sign-in (``login``).

Every field has a default, so a missing section is a working one: loopback on port 8443 without
TLS (for an admin's TLS reverse proxy in front), tokens of at most 90 days, 100 requests a minute.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

import attrs

from ds01_core.api import Duration

Problem = tuple[tuple[str | int, ...], str]
#: how a password is checked: the system's PAM stack, or a bind to the LDAP plugin's directory
PasswordMethod = Literal["pam", "ldap"]
LOOPBACK_HOSTS = ("localhost",)


@attrs.define
class OidcConfig:
    """``plugins.web.login.oidc``: an OpenID provider (university SSO) for the sign-in page."""

    #: the provider's issuer URL (``<issuer>/.well-known/openid-configuration`` is read)
    issuer: str
    #: the client registered at the provider for ds01-web
    client_id: str
    #: a file (mode 0600, root's) holding the client secret
    client_secret_file: str
    #: where the provider sends the browser back: ``https://<this server>/login/oidc/callback``
    redirect_url: str
    #: the claim that holds the local user name
    username_claim: str = "preferred_username"
    scopes: list[str] = attrs.Factory(lambda: ["openid", "profile", "email"])
    #: if given, the part of ``username_claim`` after ``@`` must be one of these (and is dropped)
    allowed_domains: list[str] | None = None
    #: the link's text: "Sign in with <label>"
    label: str = "university SSO"


@attrs.define
class LoginConfig:
    """``plugins.web.login``: how people sign in to the pages (the REST API takes tokens only)."""

    #: password checks, tried in this order until one accepts
    methods: list[PasswordMethod] = attrs.Factory(lambda: ["pam"])
    #: the PAM service (``/etc/pam.d/<name>``, shipped as packaging/pam.d/ds01-web)
    pam_service: str = "ds01-web"
    #: failed sign-ins per user name or per address within ``brake_window`` before a pause
    brake_failures: int = 10
    brake_window: Duration = Duration(15 * 60)
    #: accounts below this uid (root, system accounts) never sign in to the pages
    min_uid: int = 1000
    oidc: OidcConfig | None = None


def _url_problem(url: str, what: str) -> str | None:
    """None for an https URL (or http on loopback, for tests), else what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{what} must be an https:// URL, not {url!r}"
    if parts.query or parts.fragment:
        return f"{what} must have no query or fragment: {url!r}"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return f"{what} must use https:// (plain http only on loopback): {url!r}"
    return None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def login_problems(login: LoginConfig) -> list[Problem]:
    """The problems of ``plugins.web.login``, by their path under it."""
    problems: list[Problem] = []
    if not login.methods and login.oidc is None:
        problems.append(
            (("methods",), "give pam and/or ldap, or configure oidc: nobody could sign in")
        )
    if login.min_uid < 1:
        problems.append((("min_uid",), "must be at least 1: root never signs in to the pages"))
    if len(set(login.methods)) != len(login.methods):
        problems.append((("methods",), f"names a method twice: {login.methods}"))
    if not re.fullmatch(r"[A-Za-z0-9._-]+", login.pam_service):
        problems.append((("pam_service",), f"not a PAM service name: {login.pam_service!r}"))
    if login.brake_failures < 1:
        problems.append((("brake_failures",), "must be at least 1"))
    if float(login.brake_window) < 60:
        problems.append((("brake_window",), "must be at least a minute"))
    oidc = login.oidc
    if oidc is None:
        return problems
    for field in ("issuer", "redirect_url"):
        found = _url_problem(getattr(oidc, field), field)
        if found:
            problems.append((("oidc", field), found))
    if not oidc.redirect_url.endswith("/login/oidc/callback"):
        problems.append(
            (
                ("oidc", "redirect_url"),
                f"must end in /login/oidc/callback (ds01-web's callback), not {oidc.redirect_url!r}",
            )
        )
    if not oidc.client_id.strip():
        problems.append((("oidc", "client_id"), "must not be empty"))
    if not oidc.client_secret_file.startswith("/"):
        problems.append(
            (
                ("oidc", "client_secret_file"),
                f"must be an absolute path, not {oidc.client_secret_file!r}",
            )
        )
    if "openid" not in oidc.scopes:
        problems.append((("oidc", "scopes"), f"must include openid: {oidc.scopes}"))
    if not oidc.username_claim.strip():
        problems.append((("oidc", "username_claim"), "must not be empty"))
    for i, domain in enumerate(oidc.allowed_domains or []):
        if not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", domain):
            problems.append((("oidc", "allowed_domains", i), f"not a domain name: {domain!r}"))
    if oidc.allowed_domains == []:
        problems.append((("oidc", "allowed_domains"), "is empty: leave it out, or name a domain"))
    return problems


@attrs.define
class WebConfig:
    """``plugins.web``: the REST API's listener, TLS, tokens and rate limit."""

    #: the address ``ds01-web`` listens on (loopback: behind a reverse proxy on this host)
    listen: str = "127.0.0.1"
    port: int = 8443
    #: a PEM certificate (chain) and its key, for HTTPS without a proxy; both or neither
    tls_cert: str | None = None
    tls_key: str | None = None
    #: the reverse proxies whose ``X-Forwarded-For`` names the client (audit source address)
    trusted_proxies: list[str] = attrs.Factory(list)
    #: the longest lifetime a personal API token may be given
    token_max_lifetime: Duration = Duration(90 * 86400)
    #: the most tokens one user may hold that are neither expired nor revoked
    max_tokens_per_user: int = 50
    #: requests per minute one user may make (each user on their own)
    rate_limit: int = 100
    #: the most operations run at once (a thread each)
    threads: int = 16
    #: how long a browser stays signed in, from sign-in, whatever it does
    session_lifetime: Duration = Duration(8 * 3600)
    #: how recently an admin must have typed their password to act as an admin on the pages
    reauth_window: Duration = Duration(15 * 60)
    #: where admins find the dashboards (e.g. Grafana), shown by ``admin.metrics``
    dashboards_url: str | None = None
    #: how people sign in to the pages (``login.methods``, ``login.pam_service``, ``login.oidc``)
    login: LoginConfig = attrs.Factory(LoginConfig)

    def config_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        if not 1 <= self.port <= 65535:
            problems.append((("port",), f"must be a TCP port from 1 to 65535, not {self.port}"))
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append((("tls_key",), "give tls_cert and tls_key together, or neither"))
        for field in ("tls_cert", "tls_key"):
            value = getattr(self, field)
            if value is not None and not value.startswith("/"):
                problems.append(((field,), f"must be an absolute path, not {value!r}"))
        if float(self.token_max_lifetime) < 60:
            problems.append((("token_max_lifetime",), "must be at least a minute"))
        if self.dashboards_url is not None and not self.dashboards_url.startswith(
            ("https://", "http://")
        ):
            problems.append((("dashboards_url",), "must be an http(s):// address"))
        for field in ("session_lifetime", "reauth_window"):  # seconds are for tests
            if float(getattr(self, field)) < 5:
                problems.append(((field,), "must be at least 5 seconds"))
        for field in ("rate_limit", "max_tokens_per_user", "threads"):
            if getattr(self, field) < 1:
                problems.append(((field,), "must be at least 1"))
        problems.extend((("login", *path), text) for path, text in login_problems(self.login))
        return problems


__all__ = ["LoginConfig", "OidcConfig", "PasswordMethod", "WebConfig", "is_loopback"]
