"""``admin.metrics``: where an admin finds ds01's metrics — the Prometheus exporter ``ds01d``
serves (``plugins.prometheus``) and the dashboards (``plugins.web.dashboards_url``).

The web plugin does not import the Prometheus plugin: it reads that plugin's section as the
runtime holds it, and says when the plugin is not active.
"""

from __future__ import annotations

from typing import Any

from ds01_core.api import Operation, ServiceContext

DEFAULT_LISTEN = "127.0.0.1:9101"


def _exporter(ctx: ServiceContext) -> dict[str, Any]:
    record = ctx.runtime.plugins.record("prometheus")
    if record is None or record.status != "active":
        return {
            "url": None,
            "note": "the ds01-prometheus plugin is not active: install and enable it "
            "(see docs/metrics.md)",
        }
    section = ctx.runtime.plugin_config("prometheus")
    listen = str(getattr(section, "listen", DEFAULT_LISTEN))
    host, _, port = listen.rpartition(":")
    host = host or "0.0.0.0"
    scheme = "https" if getattr(section, "tls_cert_file", None) else "http"
    return {
        "url": f"{scheme}://{host}:{port}/metrics",
        "basic_auth": bool(getattr(section, "basic_auth_username", None)),
        "note": "served by ds01d; Prometheus scrapes it (`ds01 admin monitoring` sets it up)",
    }


def metrics(ctx: ServiceContext) -> dict[str, Any]:
    """The exporter's address and the dashboards' link (None where not configured)."""
    from ds01_web.app import settings_of

    return {
        "exporter": _exporter(ctx),
        "dashboards_url": settings_of(ctx.runtime).dashboards_url,
    }


OPERATIONS = (
    Operation(
        "admin.metrics",
        "GET",
        "/v1/admin/metrics",
        metrics,
        admin=True,
        summary="Where the Prometheus metrics and the dashboards are.",
    ),
)
