"""The ``prometheus`` plugin: ds01's state as Prometheus metrics, alerts and dashboards."""

from __future__ import annotations

import click

from ds01_core.api import hookimpl


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 admin monitoring``: set up Prometheus, Alertmanager and Grafana for ds01."""
    # the CLI module only when the CLI asks: ds01d never loads click's commands
    from ds01_prometheus.monitoring_cli import add_to

    add_to(cli)
