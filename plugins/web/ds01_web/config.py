"""The ``plugins.web:`` configuration section: where ``ds01-web`` listens, its TLS files, how
long a personal token may live, and the per-user rate limit.

Every field has a default, so a missing section is a working one: loopback on port 8443 without
TLS (for an admin's TLS reverse proxy in front), tokens of at most 90 days, 100 requests a minute.
"""

from __future__ import annotations

import attrs

from ds01_core.api import Duration

Problem = tuple[tuple[str | int, ...], str]


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
        for field in ("session_lifetime", "reauth_window"):
            if float(getattr(self, field)) < 60:
                problems.append(((field,), "must be at least a minute"))
        for field in ("rate_limit", "max_tokens_per_user", "threads"):
            if getattr(self, field) < 1:
                problems.append(((field,), "must be at least 1"))
        return problems


__all__ = ["WebConfig"]
