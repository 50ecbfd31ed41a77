"""The ``prometheus`` plugin: ds01's state as Prometheus metrics, alerts and dashboards.

Hooks: ``plugin_config_sections`` (``plugins.prometheus``, :mod:`ds01_prometheus.config`),
``cycle_finished`` (the snapshot a scrape serves, built after every cycle:
:mod:`ds01_prometheus.collector`) and ``daemon_services`` (the listener inside ``ds01d``:
:mod:`ds01_prometheus.server`). The metric names are the catalogue's (docs/metrics.md).
"""

from __future__ import annotations

from typing import Any

import click

from ds01_core.api import CycleReport, DaemonService, Runtime, hookimpl

PLUGIN = "prometheus"


def settings_of(runtime: Runtime) -> Any:
    """The ``plugins.prometheus`` section (its defaults when the file has none)."""
    # lazy: the section's class is loaded with the configuration, not at import
    from ds01_prometheus.config import PrometheusConfig

    return runtime.plugin_config(PLUGIN) or PrometheusConfig()


@hookimpl
def plugin_config_sections() -> dict[str, type]:
    # lazy: the plugin loads its config classes only when ds01 reads a configuration
    from ds01_prometheus.config import PrometheusConfig

    return {PLUGIN: PrometheusConfig}


@hookimpl
def cycle_finished(runtime: Runtime, report: CycleReport) -> None:
    # lazy: prometheus_client and the builders load in ds01d only, never in a CLI command
    from ds01_prometheus.collector import running_exporter

    exporter = running_exporter(runtime)
    if exporter is not None:  # only where a listener serves it (ds01d)
        exporter.update(runtime, report)


@hookimpl
def daemon_services(runtime: Runtime) -> list[DaemonService]:
    # lazy: the HTTP server loads in ds01d only
    from ds01_prometheus.server import ExporterService

    return [ExporterService(runtime, settings_of(runtime))]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 admin monitoring``: set up Prometheus, Alertmanager and Grafana for ds01."""
    # the CLI module only when the CLI asks: ds01d never loads click's commands
    from ds01_prometheus.monitoring_cli import add_to

    add_to(cli)
