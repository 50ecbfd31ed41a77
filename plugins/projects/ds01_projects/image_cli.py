"""``ds01 image create|list|remove`` (and the group that ``update``/``rebuild`` join): the
user's own images ``ds01/<user>/<name>``, defined by a readable Dockerfile and
``ds01-image.yaml``, built through the gateway in the user's own process."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.prompt import Confirm

from ds01_core.api import (
    CliState,
    Conflict,
    Invalid,
    NotFound,
    format_bytes,
    format_duration,
    pass_state,
    print_json,
    print_table,
)
from ds01_projects.gateway_client import gateway_api
from ds01_projects.image_flow import Session, build, report
from ds01_projects.image_prompts import ask_packages, choose_base, interactive, resolve_base
from ds01_projects.images import ImageRow, definition_dir, docker_call, find_image, user_images
from ds01_projects.imagespec import (
    PACKAGE_KINDS,
    SPEC_FILE,
    ImageSpec,
    check_name,
    check_package,
    check_tag,
    write_definition,
)
from ds01_projects.settings import load_settings

_ERR = Console(stderr=True)


def session_for(state: CliState, *, ask: bool, as_json: bool = False) -> Session:
    """The command's settings (from the server) and gateway client."""
    settings = load_settings(state)
    console = Console(stderr=True) if as_json else Console()
    return Session(state, settings, gateway_api(settings), console, ask, as_json)


@click.group("image")
def image() -> None:
    """Your own images, ds01/<you>/NAME: a base from the catalogue plus your packages.

    Each image has a definition directory (~/.ds01/images/NAME, or a project's folder) with a
    readable Dockerfile and ds01-image.yaml; builds go through the ds01 gateway as you.
    """


def _packages(kind: str, values: tuple[str, ...]) -> list[str]:
    return [check_package(kind, v) for v in values]


def copy_requirements(directory: Path, requirements: str) -> str:
    """The requirements file as a name inside ``directory`` (copied there when outside)."""
    source = Path(requirements).expanduser()
    if not source.is_file():
        raise Invalid(f"the requirements file {requirements} does not exist")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return str(source.resolve().relative_to(directory.resolve()))
    except ValueError:
        target = directory / source.name
        shutil.copyfile(source, target)
        return source.name


@image.command()
@click.argument("name")
@click.option("--base", metavar="KEY|REF", help="A catalogue key or an image reference.")
@click.option("--pip", multiple=True, metavar="PKG", help="A pip package (repeatable).")
@click.option("--conda", multiple=True, metavar="PKG", help="A conda package (repeatable).")
@click.option("--apt", multiple=True, metavar="PKG", help="A system (apt) package (repeatable).")
@click.option("--requirements", metavar="FILE", help="A requirements.txt to pip install -r.")
@click.option("--dir", "directory", metavar="DIR", help="Where the definition goes.")
@click.option("--tag", default="latest", show_default=True, help="The image's tag.")
@click.option("--no-build", is_flag=True, help="Write the definition only.")
@click.option("--force", is_flag=True, help="Replace an existing definition or image.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing (the defaults and the flags).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def create(
    state: CliState,
    name: str,
    base: str | None,
    pip: tuple[str, ...],
    conda: tuple[str, ...],
    apt: tuple[str, ...],
    requirements: str | None,
    directory: str | None,
    tag: str,
    no_build: bool,
    force: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Define and build image NAME (ds01/<you>/NAME:TAG) from a base and packages.

    On a terminal, without --yes, it asks for the base and packages it was not given.
    Examples:

        ds01 image create vision --base pytorch --pip timm --pip opencv-python-headless

        ds01 image create nlp --base pytorch --requirements requirements.txt
    """
    check_name(name)
    check_tag(tag)
    packages = {"pip": _packages("pip", pip), "conda": _packages("conda", conda)}
    packages["apt"] = _packages("apt", apt)
    session = session_for(state, ask=interactive(yes, as_json), as_json=as_json)
    settings = session.settings
    if base is None and session.ask:
        base = choose_base(settings, session.console)
    if base is None:
        base = settings.default_base
    if base is None:
        raise Invalid("give the base image: --base KEY (see `ds01 image create --help`)")
    ref, key, entry = resolve_base(settings, base)
    if session.ask and not any(packages.values()) and requirements is None:
        for kind in PACKAGE_KINDS:
            if kind == "conda" and (entry is None or entry.python != "conda"):
                continue
            packages[kind] = _packages(kind, tuple(ask_packages(kind, session.console)))
    where = Path(directory).expanduser() if directory else Path(settings.images_dir) / name
    where = where.absolute()
    rows = user_images(settings, session.api)
    existing = find_image(rows, name, tag)
    if not force:
        if (where / SPEC_FILE).exists():
            raise Conflict(
                f"{where / SPEC_FILE} exists: change it with `ds01 image update {name}`, "
                "or replace it with --force"
            )
        if existing is not None:
            raise Conflict(
                f"you have an image {existing.ref} already: `ds01 image update {name}` changes "
                "it, --force replaces it, or choose another name"
            )
    spec = ImageSpec(
        name=name,
        base=ref,
        base_key=key,
        tag=tag,
        pip=packages["pip"],
        conda=packages["conda"],
        apt=packages["apt"],
    )
    if requirements:
        spec.requirements = copy_requirements(where, requirements)
    dockerfile = write_definition(where, spec, entry)
    session.say(f"Wrote {dockerfile} and {where / SPEC_FILE}")
    if no_build:
        session.say(f"Build it with: ds01 image rebuild {name}")
        if as_json:
            print_json({"ref": None, "directory": str(where), "dockerfile": str(dockerfile)})
        return
    result = build(session, where, spec)
    data = report(session, result, where)
    if existing is not None and existing.id != result.image_id:
        from ds01_projects.image_flow import follow_up

        data.update(follow_up(session, existing, result, None, yes))
    session.say(f"Use it: ds01 container create NAME --image {result.ref}")
    if as_json:
        print_json(data)


def _age(created: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    return format_duration(max((dt.datetime.now(dt.UTC) - moment).total_seconds(), 0)) + " ago"


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def list_images(state: CliState, as_json: bool) -> None:
    """Your images: name, tag, size, base, age, and the containers using each.

    "(old)" is a build replaced by a rebuild that a container still uses: its space is freed
    when those containers are removed or recreated (`ds01 image update NAME --recreate`).
    """
    session = session_for(state, ask=False, as_json=as_json)
    rows = user_images(session.settings, session.api)
    if as_json:
        print_json([row.json() for row in rows])
        return
    print_table(
        [
            (
                r.name,
                r.tag,
                format_bytes(r.size),
                r.base or "-",
                _age(r.created),
                ", ".join(r.containers) or "-",
            )
            for r in rows
        ],
        ["name", "tag", "size", "base", "age", "containers"],
    )


@image.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove the containers using it too.")
@click.option("--purge", is_flag=True, help="Remove its definition directory too.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing.")
@pass_state
def remove(state: CliState, name: str, force: bool, purge: bool, yes: bool) -> None:
    """Remove image NAME (NAME:TAG for one tag), refusing while a container uses it.

    --force removes those containers first; --purge also removes the definition directory
    (only one under your images directory, never a project's folder).
    """
    session = session_for(state, ask=interactive(yes))
    tag = None
    if ":" in name:
        name, tag = name.split(":", 1)
    check_name(name)
    rows = [r for r in user_images(session.settings, session.api) if r.name == name]
    chosen = [r for r in rows if tag is None or r.tag == tag]
    directory = definition_dir(session.settings, name, chosen[0] if chosen else None)
    if not chosen and not (purge and (directory / SPEC_FILE).exists()):
        raise NotFound(
            f"you have no image {name}{':' + tag if tag else ''} (see `ds01 image list`)"
        )
    users = sorted({c for r in chosen for c in r.containers})
    if users and not force:
        raise Conflict(
            f"{name} is used by your container{'s' if len(users) > 1 else ''} {', '.join(users)}: "
            "remove them first (`ds01 container remove NAME`), or add --force to remove them too"
        )
    what = ", ".join(r.ref if not r.old else f"{r.name} (old build)" for r in chosen) or name
    if users:
        what += f" and the container{'s' if len(users) > 1 else ''} {', '.join(users)}"
    if session.ask and not Confirm.ask(f"Remove {what}?", default=False, console=session.console):
        raise click.exceptions.Exit(1)
    for container in users:
        state.call("containers.remove", client_timeout=None, name=container, force=True)
        click.echo(f"removed container {container}")
    for row in sorted(chosen, key=lambda r: r.old):
        _remove_image(session, row)
    if purge:
        _purge(session, directory)


def _remove_image(session: Session, row: ImageRow) -> None:
    with docker_call(f"removing {row.ref}"):
        session.api.remove_image(row.ref if not row.old else row.id)
    click.echo(f"removed {row.ref if not row.old else row.name + ' (old build)'}")


def _purge(session: Session, directory: Path) -> None:
    images_dir = Path(session.settings.images_dir).resolve()
    resolved = directory.resolve()
    if images_dir not in resolved.parents or not (resolved / SPEC_FILE).exists():
        click.echo(f"kept {directory}: only definitions under {images_dir} are purged", err=True)
        return
    shutil.rmtree(resolved)
    click.echo(f"removed {directory}")


def add_commands(cli: click.Group) -> None:
    """``ds01 image`` and its commands (``update`` and ``rebuild`` from image_update)."""
    from ds01_projects.image_update import rebuild, update

    image.add_command(update)
    image.add_command(rebuild)
    cli.add_command(image)
