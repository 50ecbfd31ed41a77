"""``ds01 container retire NAME [--save-packages]``, added to the core's ``ds01 container`` group.

The work is in :mod:`ds01_projects.retire`; the removal itself is the core's
``containers.remove`` (which releases the container's GPUs at once).
"""

from __future__ import annotations

import click
from rich.prompt import Confirm

from ds01_core.api import CliState, json_option, pass_state, print_json
from ds01_projects.project_cli import interactive
from ds01_projects.settings import load_settings


@click.command("retire")
@click.argument("name")
@click.option(
    "--save-packages",
    is_flag=True,
    help="First record the packages installed by hand (pip, apt, conda) in its image definition.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before removing it.")
@json_option
@pass_state
def retire(state: CliState, name: str, save_packages: bool, yes: bool, as_json: bool) -> None:
    """Remove container NAME for good; with --save-packages, keep what was installed in it
    by hand in the project's ds01-image.yaml and Dockerfile first.

    Example: ds01 container retire alice-thesis --save-packages
    """
    from ds01_projects.retire import check_definition, find_container
    from ds01_projects.retire import save_packages as save

    settings = load_settings(state)
    container = find_container(settings, name)
    if save_packages:
        check_definition(settings, container)  # refused here, before anything changed
    if interactive(yes) and not as_json:
        running = " (it is running)" if container.running else ""
        if not Confirm.ask(f"Remove {container.name}{running}?", default=False):
            click.echo(f"{container.name} was kept")
            return
    saved = save(settings, container) if save_packages else None
    if saved is not None and not as_json:
        for kind, packages in saved.added.by_kind().items():
            if packages:
                click.echo(f"saved {kind}: {' '.join(packages)}")
        for kind, packages in saved.already.by_kind().items():
            if packages:
                click.echo(f"already listed ({kind}): {' '.join(packages)}")
        if not saved.added and not saved.already:
            click.echo("no packages installed by hand were found")
        elif saved.added:
            click.echo(f"in {saved.directory}/ds01-image.yaml (Dockerfile rendered again)")
    state.call("containers.remove", client_timeout=None, name=container.name, force=True)
    if as_json:
        print_json(
            {
                "container": container.name,
                "removed": True,
                "definition": str(saved.directory) if saved else None,
                "saved": saved.added.by_kind() if saved else {},
                "already_listed": saved.already.by_kind() if saved else {},
            }
        )
        return
    click.echo(f"removed {container.name}")
    if saved is not None and saved.added:
        click.echo("rebuild the image with the saved packages: ds01 project launch --rebuild")
