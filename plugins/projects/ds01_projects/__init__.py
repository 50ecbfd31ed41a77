"""ds01-projects: from a new account to a running GPU project.

``ds01 image`` (images named ``ds01/<user>/<name>`` from the admin's catalogue of bases, built
through the gateway as the user), ``ds01 project`` (workspaces with a Dockerfile and a
``.devcontainer/devcontainer.json``, launched on a GPU), ``ds01 container retire``, and
``ds01 setup`` (the first-login wizard). Public API beyond the hooks:

- :class:`ProjectsConfig`: the ``plugins.projects`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import hookimpl
from ds01_projects.config import ProjectsConfig

if TYPE_CHECKING:
    import click

    from ds01_core.api import DaemonService, Operation, Runtime

__version__ = "0.1.0"

__all__ = ["ProjectsConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.projects:``, validated by the core with every problem named by its path."""
    return {"projects": ProjectsConfig}


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``projects.settings``: what the user's own process needs to know from the server."""
    from ds01_projects.base_updates import operations
    from ds01_projects.settings import OPERATIONS

    return [*OPERATIONS, *operations()]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 image``, ``ds01 project``, ``ds01 container retire`` and ``ds01 setup``."""
    from ds01_projects import image_cli
    from ds01_projects.base_updates_cmd import add_to
    from ds01_projects.project_cli import project
    from ds01_projects.retire_cli import retire
    from ds01_projects.setup_wizard import setup
    from ds01_projects.user_doctor import doctor

    image_cli.add_commands(cli)
    cli.add_command(project)
    container = cli.commands.get("container")  # the core's `ds01 container` group
    if container is not None and hasattr(container, "add_command"):
        container.add_command(retire)
    cli.add_command(setup)
    cli.add_command(doctor)
    add_to(cli)


@hookimpl
def daemon_services(runtime: Runtime) -> list[DaemonService]:
    """The base-update check (``base_updates``), in a thread of ``ds01d``."""
    from ds01_projects.base_updates import BaseUpdateService
    from ds01_projects.settings import projects_config

    cfg = projects_config(runtime)
    if not cfg.base_updates.enabled or not cfg.catalogue:
        return []
    return [BaseUpdateService(runtime, cfg)]
