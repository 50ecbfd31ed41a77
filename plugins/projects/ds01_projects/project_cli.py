"""``ds01 project init|launch|list``: the commands, their prompts and what they print.

The work is in :mod:`ds01_projects.init`, :mod:`ds01_projects.launch` and
:mod:`ds01_projects.listing`; this module asks (only on a terminal and without ``--yes``) and
prints. Every question has a flag.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.prompt import Confirm, Prompt

from ds01_core.api import CliState, json_option, pass_state, print_json, print_table
from ds01_projects.project import GpuChoice, check_mig, find_project
from ds01_projects.settings import Settings, load_settings


def interactive(yes: bool) -> bool:
    """Prompts only for a person at a terminal who did not say ``--yes``."""
    return not yes and sys.stdin.isatty() and sys.stdout.isatty()


def gpu_options(fn: Any) -> Any:
    fn = click.option("--cpu-only", is_flag=True, help="No GPU.")(fn)
    fn = click.option("--mig", metavar="PROFILE", help="One MIG instance, e.g. 2g.20gb.")(fn)
    fn = click.option(
        "--gpus", type=click.IntRange(min=0), help="Number of GPUs (0: none) [admin's default]."
    )(fn)
    return fn


@click.group("project")
def project() -> None:
    """Your projects: a folder with a Dockerfile and a dev container, launched on a GPU."""


def _ask_gpu(settings: Settings) -> GpuChoice:
    answer = Prompt.ask(
        "GPUs for the container (a number, 0 for none, or a MIG profile like 2g.20gb)",
        default=str(settings.default_gpus),
    ).strip()
    if answer.isdigit():
        return GpuChoice(cpu_only=True) if int(answer) == 0 else GpuChoice(gpus=int(answer))
    return GpuChoice(mig=check_mig(answer))


def _ask_base(settings: Settings) -> str:
    console = Console()
    for key, entry in settings.catalogue.items():
        console.print(f"  [bold]{key}[/bold]  {entry.ref}  {entry.description}")
    answer = Prompt.ask("Base image (a key above, or an image:tag)", default=settings.default_base)
    return (answer or "").strip()


@project.command("init")
@click.argument("name")
@click.option("--base", metavar="KEY|REF", help="A base from the catalogue (or an image:tag).")
@click.option("--pip", "pip", multiple=True, metavar="PKG", help="A pip package (repeatable).")
@click.option("--image", metavar="REF", help="Use this existing image instead of a Dockerfile.")
@gpu_options
@click.option("--dir", "directory", metavar="DIR", help="The folder [<workspace_root>/NAME].")
@click.option("--force", is_flag=True, help="Make a project of a folder that is not empty.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing (also when not on a terminal).")
@json_option
@pass_state
def init_cmd(
    state: CliState,
    name: str,
    base: str | None,
    pip: tuple[str, ...],
    image: str | None,
    gpus: int | None,
    mig: str | None,
    cpu_only: bool,
    directory: str | None,
    force: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Create project NAME: a folder with the image's Dockerfile (or --image), a
    .devcontainer/devcontainer.json, .gitignore and a README.

    Example: ds01 project init thesis --base pytorch --pip transformers --gpus 1
    """
    from ds01_projects.init import InitRequest, init_project
    from ds01_projects.project import check_name, project_dir

    check_name(name)
    gpu = GpuChoice.from_flags(gpus, mig, cpu_only)
    settings = load_settings(state)
    if interactive(yes) and not as_json:
        target = project_dir(settings, name, directory)
        new = not (target / "ds01-project.yaml").exists()
        if new and image is None and base is None:
            base = _ask_base(settings)
            extra = Prompt.ask("pip packages (space-separated, empty for none)", default="")
            pip = pip + tuple(extra.split())
        if new and gpu is None:
            gpu = _ask_gpu(settings)
        if not Confirm.ask(f"{'Create' if new else 'Update'} the project in {target}?"):
            raise click.Abort()
    result = init_project(
        settings,
        InitRequest(name, base, pip, image, gpu, directory, force),
    )
    if as_json:
        print_json(result.to_json())
        return
    p = result.project
    click.echo(f"{'Created' if result.new else 'Checked'} project {p.name} in {p.directory}")
    for outcome in result.files:
        note = {
            "kept": "  (you changed it: left as it is)",
            "exists": f"  (yours: change it with `ds01 image update {p.image}`)",
        }.get(outcome.action, "")
        click.echo(f"  {outcome.action:<10} {outcome.path}{note}")
    click.echo(f"Next: ds01 project launch {p.name}   (image, then container {p.container})")


@project.command("launch")
@click.argument("name", required=False)
@click.option("--rebuild", is_flag=True, help="Build the image again even if it is up to date.")
@gpu_options
@click.option("--yes", "-y", is_flag=True, help="Ask nothing (launch asks nothing anyway).")
@json_option
@pass_state
def launch_cmd(
    state: CliState,
    name: str | None,
    rebuild: bool,
    gpus: int | None,
    mig: str | None,
    cpu_only: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Build the project's image if needed and start its container (NAME: the project of the
    current folder when not given). --gpus/--mig/--cpu-only apply to a container created now.
    """
    from ds01_projects.launch import launch

    del yes
    gpu = GpuChoice.from_flags(gpus, mig, cpu_only)
    settings = load_settings(state)
    proj = find_project(settings, name)
    console = Console(stderr=True)
    result = launch(state, settings, proj, gpu=gpu, rebuild=rebuild, console=console, quiet=as_json)
    if as_json:
        print_json(result.to_json())
        return
    if result.built:
        click.echo(f"built {result.image} in {result.built.seconds:.0f}s")
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)
    what = {
        "created": "created and started",
        "started": "started",
        "running": "is already running",
    }[result.action]
    slots = ", ".join(result.slots) or "none"
    click.echo(f"{result.container} {what} (image {result.image}; GPU slots: {slots})")
    if result.stale:
        click.echo(
            f"note: {result.container} runs an older build of the image; to move to the new one: "
            f"ds01 container retire {result.container} --save-packages && "
            f"ds01 project launch {proj.name}",
            err=True,
        )
    click.echo("Attach:")
    click.echo(f"  docker exec -it {result.container} bash      (or sh)")
    click.echo(f"  VS Code: Dev Containers: Attach to Running Container… → {result.container}")
    click.echo(f"  or open {proj.directory} and 'Reopen in Container' (its own dev container)")


@project.command("list")
@json_option
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """Your projects (in the workspace root, and any with a container of yours), with image,
    container state and GPUs."""
    from ds01_projects.listing import list_projects

    settings = load_settings(state)
    rows = list_projects(settings)
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            (
                r["name"],
                r["image"],
                r["container"],
                r["state"],
                ", ".join(r["gpu_slots"]) or r["gpu"],
                r["directory"],
            )
            for r in rows
        ],
        ["project", "image", "container", "state", "gpus", "folder"],
        shrinkable=[1, 5],
    )
