"""The CLI's shared state: the options every command sees and its way to the services.

:class:`CliState` is what ``@pass_state`` hands a command (the built-in ones and the plugins'
alike); it runs an operation in this process for root and over the API socket for everyone
else, so a command never decides a rule itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from ds01_core.domain.config import ConfigError, read_config_file, resolve_config_path
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.framework.startup import starting
from ds01_core.services.caller import Caller
from ds01_core.services.operations import OperationTable, ServiceContext, jsonable

if TYPE_CHECKING:
    from ds01_core.framework.manager import PluginHost
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
        runtime = self.runtime
        return ServiceContext(runtime, Caller.of_this_process(runtime.config.gateway.admin_group))

    @cached_property
    def client(self) -> ApiClient:
        # lazy: the socket client (http.client, ~8 ms) only for a command that calls the socket
        from ds01_core.transports.api_socket.client import ApiClient

        return ApiClient(api_socket_path(self.config_path))

    @cached_property
    def operations(self) -> OperationTable:
        """The operations this client knows: the core's and the locally installed plugins'."""
        # lazy: the catalogue loads every service and the docker SDK (~250 ms); --help needs none
        from ds01_core.services.catalogue import core_operations

        extra = self.plugin_host.hooks.service_operations() if self.plugin_host else []
        return OperationTable([*core_operations(), *extra])

    def call(
        self, operation: str, /, *, client_timeout: float | None = 120.0, **params: Any
    ) -> Any:
        """Run ``operation`` for the caller; JSON-shaped result; ServiceError on refusal."""
        if self.in_process:
            # lazy: the catalogue loads every service and the docker SDK (~250 ms)
            from ds01_core.services.catalogue import call

            return call(self.context, operation, **params)
        return self.client.call(self.operations.get(operation), params, timeout=client_timeout)

    def stream(self, operation: str, /, **params: Any) -> Iterator[Any]:
        """Run a streaming operation: its items (bytes, or JSON records) as they come."""
        if self.in_process:
            # lazy: the catalogue loads every service and the docker SDK (~250 ms)
            from ds01_core.services.catalogue import call, operation_table

            op = operation_table(self.runtime).get(operation)
            items = call(self.context, operation, **params)
            if op.stream == "bytes":
                return iter(items)
            return (jsonable(item) for item in items if item is not None)
        return self.client.stream(self.operations.get(operation), params)


def api_socket_path(config_path: str | None) -> str:
    """Where the API socket is: ``DS01_API_SOCKET``, else ``api.socket`` of the configuration
    file when it can be read, else the default."""
    # lazy: the socket client (http.client, ~8 ms) only for a command that calls the socket
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
"""Hands a command the :class:`CliState` of the running ``ds01`` (``@pass_state``)."""
