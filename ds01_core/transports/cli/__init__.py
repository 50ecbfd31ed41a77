"""The ``ds01`` command line: one click group; each command family lives in its own module.

Plugins add commands through the ``add_cli_commands`` hook. To know which plugins to ask, the
CLI reads ``--config``/``--no-plugins`` from the arguments before click parses them; a broken
plugin or configuration never hides the built-in commands (``ds01 config check`` must work
precisely when the file is broken).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ds01_core import __version__
from ds01_core.domain.config import (
    ConfigError,
    plugin_selection,
    read_config_file,
    resolve_config_path,
)
from ds01_core.framework.manager import PluginStartupError, make_plugin_host
from ds01_core.transports.cli import (
    admin_cmd,
    config_cmd,
    container_cmd,
    events_cmd,
    gpu_cmd,
    keepalive_cmd,
    plugins_cmd,
    quota_cmd,
    workloads_cmd,
)
from ds01_core.transports.cli.group import Ds01Group
from ds01_core.transports.cli.state import CliState, pass_state

if TYPE_CHECKING:
    from ds01_core.framework.manager import PluginHost

# CliState, pass_state and Ds01Group live in state.py and group.py (the command modules import
# them from there, never from this package); they stay importable from here too
__all__ = ["CliState", "Ds01Group", "cli", "main", "pass_state"]


@click.group(
    cls=Ds01Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="ds01")
@click.option(
    "--config",
    "config_path",
    envvar="DS01_CONFIG",
    metavar="FILE",
    help="Configuration file [env DS01_CONFIG; default /etc/ds01/ds01.yaml].",
)
@click.option("--no-plugins", is_flag=True, help="Load only the built-in plugins.")
@click.option("--debug", is_flag=True, help="Log debug messages to stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, no_plugins: bool, debug: bool) -> None:
    """ds01: see, attribute and limit every GPU workload on a shared GPU server."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    host = ctx.obj if ctx.obj is not None and not isinstance(ctx.obj, CliState) else None
    ctx.obj = CliState(config_path, no_plugins, host)


def _register_builtin_commands() -> None:
    cli.add_command(plugins_cmd.plugins)
    cli.add_command(config_cmd.config)
    cli.add_command(gpu_cmd.gpu)
    cli.add_command(events_cmd.events)
    cli.add_command(workloads_cmd.workloads)
    cli.add_command(container_cmd.container)
    cli.add_command(admin_cmd.admin)
    cli.add_command(quota_cmd.quota)
    cli.add_command(keepalive_cmd.keepalive)


def _prescan(argv: Sequence[str]) -> tuple[str | None, bool]:
    config_path, no_plugins = None, False
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(argv):
            config_path = argv[i + 1]
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
        elif arg == "--no-plugins":
            no_plugins = True
    return config_path, no_plugins


def _add_plugin_commands(argv: Sequence[str]) -> PluginHost | None:
    config_path, no_plugins = _prescan(argv)
    if no_plugins:
        return None
    try:
        data = read_config_file(resolve_config_path(config_path))
    except ConfigError:
        data = {}
    disabled, _required, order = plugin_selection(data)
    try:
        # built-in plugins add no commands and no operations: not importing them (Docker's SDK
        # among them) keeps every command's start-up short
        host = make_plugin_host(disabled=disabled, order=order, builtins=())
    except PluginStartupError as exc:
        click.echo(f"Warning: plugin commands unavailable: {exc}", err=True)
        return None
    for plugin, error in host.hooks.add_cli_commands(cli):
        click.echo(f"Warning: plugin {plugin!r} could not add its commands: {error}", err=True)
    return host


_register_builtin_commands()
cli.sealed = True


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    host = _add_plugin_commands(args)
    cli.main(args=args, prog_name="ds01", obj=host)
