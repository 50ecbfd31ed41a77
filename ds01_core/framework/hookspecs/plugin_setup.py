"""Hook specifications for setting a plugin up: its configuration, CLI commands and operations.

Each is called once per process (``configure`` again after a configuration reload), before the
plugin does any work. The rules common to every hook are in :mod:`ds01_core.framework.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.framework.hookspecs.markers import hookspec

if TYPE_CHECKING:
    import click

    from ds01_core.framework.daemon_services import DaemonService
    from ds01_core.framework.runtime import Runtime
    from ds01_core.services.operations import Operation


@hookspec
def plugin_config_sections() -> Mapping[str, type]:
    """Declare the configuration section(s) this plugin reads.

    Called once while the configuration is loaded, before it is validated.

    :return: a mapping from section name to an attrs class. The YAML under
        ``plugins.<name>`` is structured into that class with the same converter (and the same
        strict rules) as the core configuration; its errors are reported with their full path
        (``plugins.<name>.<field>: …``). A section missing from the file is built from the
        class's defaults, so every field needs one. Two plugins declaring the same section name
        is a start-up error.

    Not firstresult: every plugin's mapping is merged.

    If an implementation raises: the plugin is disabled (``ds01 plugins`` shows it as failed,
    with the error) and its ``plugins.<name>`` section is ignored; the other plugins' sections
    are read. A plugin listed in ``plugins.required`` stops start-up instead.
    """


@hookspec
def configure(runtime: Runtime) -> None:
    """Take the loaded configuration and get ready to work.

    Called once per process after the configuration has been validated and the plugin manager
    built, and again after every successful configuration reload in the daemon.

    :param runtime: the process's :class:`~ds01_core.framework.runtime.Runtime`: ``runtime.config`` is the
        validated :class:`~ds01_core.domain.config.Config`, ``runtime.plugin_config(name)`` a plugin's
        own section.

    Not firstresult: every plugin is configured.

    If an implementation raises: the plugin is disabled (unregistered, so no later hook runs it
    half-configured; ``ds01 plugins`` shows it as failed, with the error) and the others are
    configured as usual. A plugin listed in ``plugins.required`` stops start-up instead (the
    daemon keeps its last good configuration on a reload).
    """


@hookspec
def add_cli_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``ds01`` command line.

    Called once when the CLI starts, after the built-in commands are registered.

    :param cli: the root ``ds01`` click group; call ``cli.add_command(...)``. Adding a command
        whose name is already taken is an error reported with the plugin's name.

    Not firstresult: every plugin adds its commands.

    If an implementation raises: ``ds01`` prints a one-line warning naming the plugin, and the
    commands of every other plugin (and whatever this one added before it raised) are there.
    """


@hookspec
def service_operations() -> Sequence[Operation]:
    """Declare service operations: what the plugin lets a caller do, over every transport.

    Called once per process when the operation table is first needed (the API socket serves
    each operation under its ``/v1/…`` path; the CLI calls it in-process for root and over the
    socket for everyone else). An operation's function receives a
    :class:`~ds01_core.services.operations.ServiceContext` (the runtime and the caller) and
    its parameters, and decides what that caller may see and do (``ctx.target_user``,
    ``ctx.require_admin``, or ``admin=True`` on the operation).

    :return: operations whose names (``<plugin>.<what>``) and paths are not used by the core
        or another plugin.

    Not firstresult: every plugin's operations are served (a name declared twice stops the
    table from being built, naming the operation).

    If an implementation raises: its operations are missing (logged with the plugin's name)
    and the others' are still served.
    """


@hookspec
def daemon_services(runtime: Runtime) -> Sequence[DaemonService]:
    """Declare what this plugin runs inside ``ds01d`` beside the cycle (a listener, a watcher).

    Called by the daemon after it has loaded its runtime, and again after each configuration
    reload (the old services are stopped first, then the new runtime's are started). Only
    ``ds01d`` calls it: the CLI, ``ds01-api`` and ``ds01-gateway`` never start these.

    :param runtime: the daemon's runtime.
    :return: :class:`~ds01_core.framework.daemon_services.DaemonService` objects; the daemon
        calls ``start()`` on each, and ``stop()`` when it reloads or exits.

    Not firstresult: every plugin's services run.

    If an implementation raises: (as when a service's ``start`` raises, an address already in
    use) the failure is logged and written to the audit log as ``plugin.failed``; the daemon
    and its cycle carry on without that service (an admin's monitoring sees it missing).
    """
