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

from ds01_core.api import Refusal, hookimpl
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
    """``projects.settings``: what the user's own process needs to know from the server;
    ``projects.images``: the caller's own images (for the web pages)."""
    from ds01_projects.base_updates import operations
    from ds01_projects.own_images import OPERATIONS as IMAGES
    from ds01_projects.settings import OPERATIONS

    return [*OPERATIONS, *IMAGES, *operations()]


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


@hookimpl
def check_build(runtime: Runtime, user: str, images: Sequence[str]) -> Refusal | None:
    """With ``allowed_bases: catalogue``, a build through the gateway reads only catalogue
    bases, ``extra_allowed_bases`` and the user's own images (``docker build`` too, not only
    ``ds01 image``)."""
    from ds01_projects.bases import base_allowed
    from ds01_projects.settings import projects_config

    cfg = projects_config(runtime)
    catalogue = [entry.image for entry in cfg.catalogue.values()]
    for ref in images:
        if not base_allowed(
            ref,
            user=user,
            allowed_bases=cfg.allowed_bases,
            catalogue_images=catalogue,
            extra_patterns=cfg.extra_allowed_bases,
        ):
            offered = ", ".join(f"{e.image}:{e.tag}" for e in cfg.catalogue.values()) or "none"
            return Refusal(
                f"{ref} is not a base the admins allow (plugins.projects.allowed_bases: "
                f"catalogue); build from one of: {offered}"
                + (
                    f", or an image matching {', '.join(cfg.extra_allowed_bases)}"
                    if cfg.extra_allowed_bases
                    else ""
                )
                + ", or one of your own images (`ds01 image create NAME --base KEY`)",
                "projects",
            )
    return None
