"""``ds01 plugins``: every plugin, where it comes from, what it implements, whether it runs."""

from __future__ import annotations

import click

from ds01_core.domain.config import (
    ConfigError,
    plugin_selection,
    read_config_file,
    resolve_config_path,
)
from ds01_core.framework.manager import PluginStartupError, make_plugin_host
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.command()
@json_option
@pass_state
def plugins(state: CliState, as_json: bool) -> None:
    """List plugins with distribution, version, hooks and status.

    Status is one of: active, disabled (by plugins.disabled), failed (with the error). The
    listing works even when the configuration file is invalid, to help find out why.
    """
    try:
        data = read_config_file(resolve_config_path(state.config_path))
    except ConfigError:
        data = {}
    disabled, required, order = plugin_selection(data)
    startup_error = None
    try:
        host = make_plugin_host(
            disabled=disabled, order=order, load_entry_points=not state.no_plugins
        )
    except PluginStartupError as exc:
        raise click.ClickException(str(exc)) from None
    for record in host.records:
        record.required = record.name in required
    missing = [name for name in required if host.record(name) is None]
    if as_json:
        print_json(
            {
                "plugins": [r.to_json() for r in host.records],
                "missing_required": missing,
            }
        )
    else:
        rows = [
            (
                r.name + (" *" if r.required else ""),
                r.distribution,
                r.version,
                r.status,
                ", ".join(r.hooks) or "-",
            )
            for r in host.records
        ]
        print_table(rows, ["plugin", "distribution", "version", "status", "hooks"], shrinkable=[4])
        for r in host.records:
            if r.error:
                click.echo(f"{r.name}: {r.error}", err=True)
        for name in missing:
            click.echo(f"{name}: required but not installed", err=True)
        if any(r.required for r in host.records):
            click.echo("* required by plugins.required")
    if missing or any(r.required and r.status == "failed" for r in host.records):
        startup_error = "a required plugin is missing or failed"
    if startup_error:
        raise SystemExit(1)
