"""The ``ds01`` command line: one click group; each command family lives in its own module.

Plugins add commands through the ``add_cli_commands`` hook. To know which plugins to ask, the
CLI reads ``--config``/``--no-plugins`` from the arguments before click parses them; a broken
plugin or configuration never hides the built-in commands (``ds01 config check`` must work
precisely when the file is broken).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from ds01_core import __version__
from ds01_core.domain.config import ConfigError
from ds01_core.framework.manager import PluginStartupError
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.framework.startup import starting
from ds01_core.services.errors import ServiceError

if TYPE_CHECKING:
    from ds01_core.framework.manager import PluginHost
    from ds01_core.services.operations import OperationTable, ServiceContext
    from ds01_core.transports.api_socket.client import ApiClient


class CliState:
    """Options shared by every command; the way to the services; the runtime on first use.

    Root runs operations in this process (:meth:`call` with the in-process runtime); everyone
    else reaches them through the ds01 API socket, where the service learns who they are from
    the kernel. Commands call :meth:`call`/:meth:`stream` and never decide a rule themselves.
    """

    def __init__(
        self,
        config_path: str | None,
        no_plugins: bool,
        plugin_host: PluginHost | None = None,
    ):
        self.config_path = config_path
        self.no_plugins = no_plugins
        self.plugin_host = plugin_host

    @cached_property
    def runtime(self) -> Runtime:
        refuse_borrowed_privilege(self.config_path, self.no_plugins)
        with starting("ds01"):
            return load_runtime(self.config_path, no_plugins=self.no_plugins)

    # -- the services -------------------------------------------------------------------------

    @property
    def in_process(self) -> bool:
        """Root calls the services directly; everyone else goes through the API socket."""
        return os.geteuid() == 0 and not os.environ.get("DS01_API_SOCKET")

    @cached_property
    def context(self) -> ServiceContext:
        from ds01_core.services.caller import Caller
        from ds01_core.services.operations import ServiceContext

        runtime = self.runtime
        return ServiceContext(runtime, Caller.of_this_process(runtime.config.gateway.admin_group))

    @cached_property
    def client(self) -> ApiClient:
        from ds01_core.transports.api_socket.client import ApiClient

        return ApiClient(api_socket_path(self.config_path))

    @cached_property
    def operations(self) -> OperationTable:
        """The operations this client knows: the core's and the locally installed plugins'."""
        from ds01_core.services.catalogue import core_operations
        from ds01_core.services.operations import OperationTable

        extra = self.plugin_host.hooks.service_operations() if self.plugin_host else []
        return OperationTable([*core_operations(), *extra])

    def call(
        self, operation: str, /, *, client_timeout: float | None = 120.0, **params: Any
    ) -> Any:
        """Run ``operation`` for the caller; JSON-shaped result; ServiceError on refusal."""
        if self.in_process:
            from ds01_core.services.operations import call

            return call(self.context, operation, **params)
        return self.client.call(self.operations.get(operation), params, timeout=client_timeout)

    def stream(self, operation: str, /, **params: Any) -> Iterator[Any]:
        """Run a streaming operation: its items (bytes, or JSON records) as they come."""
        if self.in_process:
            from ds01_core.services.operations import call, jsonable, operation_table

            op = operation_table(self.runtime).get(operation)
            items = call(self.context, operation, **params)
            if op.stream == "bytes":
                return iter(items)
            return (jsonable(item) for item in items if item is not None)
        return self.client.stream(self.operations.get(operation), params)


def api_socket_path(config_path: str | None) -> str:
    """Where the API socket is: ``DS01_API_SOCKET``, else ``api.socket`` of the configuration
    file when it can be read, else the default."""
    from ds01_core.domain.config import read_config_file, resolve_config_path
    from ds01_core.transports.api_socket.client import DEFAULT_SOCKET

    chosen = os.environ.get("DS01_API_SOCKET")
    if chosen:
        return chosen
    try:
        data = read_config_file(resolve_config_path(config_path))
    except (ConfigError, OSError):
        return DEFAULT_SOCKET
    api = data.get("api") if isinstance(data, dict) else None
    socket_path = api.get("socket") if isinstance(api, dict) else None
    return socket_path if isinstance(socket_path, str) else DEFAULT_SOCKET


def refuse_borrowed_privilege(config_path: str | None, no_plugins: bool) -> None:
    """Under sudo, only admins may choose another configuration or skip plugins.

    ``sudo ds01 container …`` runs as root for a user; with ``--config`` (or ``DS01_CONFIG``,
    if sudo kept it) that user could point ds01 at a file granting them any quota, or disable
    the plugins that enforce limits. Refused, fail-closed, before anything is loaded.
    """
    if os.geteuid() != 0 or not os.environ.get("SUDO_USER"):
        return
    from ds01_core.services.caller import Caller

    # the configuration is what is in question: the admin group is its default, not its value
    caller = Caller.of_this_process("ds01-admin")
    if caller.admin:
        return
    chosen = config_path or os.environ.get("DS01_CONFIG")
    if chosen or no_plugins:
        what = "--no-plugins" if no_plugins else f"the configuration {chosen}"
        click.echo(
            f"Error: {caller.name} runs ds01 through sudo and may not choose {what}; "
            "only admins (root or the ds01-admin group) may",
            err=True,
        )
        sys.exit(2)


pass_state = click.make_pass_decorator(CliState)


class Ds01Group(click.Group):
    """The root group; once sealed, a command name can be added only once, so a plugin can
    never silently replace a built-in command (or another plugin's)."""

    sealed = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self.sealed and name in self.commands:
            raise ValueError(f"the command name {name!r} is already taken")
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a service's refusal or failure is one line on stderr with its exit
        code, never a traceback (``--debug`` shows the traceback of an unexpected error)."""
        try:
            return super().invoke(ctx)
        except ServiceError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(
                f"Error: {type(exc).__name__}: {exc} (this is a bug in ds01; run the command "
                "again with --debug for the details and tell an admin)",
                err=True,
            )
            ctx.exit(1)


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
    from ds01_core.domain.config import plugin_selection, read_config_file, resolve_config_path
    from ds01_core.framework.manager import make_plugin_host

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
