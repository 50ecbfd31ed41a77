"""``ds01 image update`` and ``ds01 image rebuild``: change an image's definition, rebuild
it, and move the containers of the old build to the new one.

``update`` edits ``ds01-image.yaml``, re-renders the Dockerfile (keeping the user's own
section) and offers the rebuild; with no options it notices a Dockerfile edited by hand (its
hash differs from the one the image was built from) and offers the rebuild of that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.prompt import Confirm

from ds01_core.api import CliState, Invalid, pass_state, print_json
from ds01_projects.image_cli import copy_requirements, session_for
from ds01_projects.image_flow import Session, build, follow_up, out_of_date, report
from ds01_projects.image_prompts import entry_for, interactive, resolve_base
from ds01_projects.images import ImageRow, definition_dir, find_image, user_images
from ds01_projects.imagespec import (
    PACKAGE_KINDS,
    SPEC_FILE,
    ImageSpec,
    check_name,
    check_package,
    load_spec,
    write_definition,
)
from ds01_projects.recreate import recreate_containers


def _locate(session: Session, name: str, directory: str | None) -> tuple[Path, ImageRow | None]:
    check_name(name)
    row = find_image(user_images(session.settings, session.api), name)
    where = Path(directory).expanduser().absolute() if directory else None
    return where or definition_dir(session.settings, name, row), row


def _edit(
    spec: ImageSpec, adds: dict[str, tuple[str, ...]], removes: dict[str, tuple[str, ...]]
) -> list[str]:
    """Apply ``--add-*``/``--remove-*`` to ``spec``; the changes as ``+ pip numpy`` lines."""
    changes = []
    for kind in PACKAGE_KINDS:
        current: list[str] = getattr(spec, kind)
        for package in removes[kind]:
            package = check_package(kind, package)
            if package not in current:
                raise Invalid(
                    f"{package} is not among the {kind} packages of {spec.name} "
                    f"({', '.join(current) or 'none'})"
                )
            current.remove(package)
            changes.append(f"- {kind} {package}")
        for package in adds[kind]:
            package = check_package(kind, package)
            if package not in current:
                current.append(package)
                changes.append(f"+ {kind} {package}")
    return changes


def _article(kind: str) -> str:
    return "an" if kind == "apt" else "a"


def _pkg_options(fn: Any) -> Any:
    for kind in reversed(PACKAGE_KINDS):
        fn = click.option(
            f"--remove-{kind}",
            multiple=True,
            metavar="PKG",
            help=f"Remove {_article(kind)} {kind} package.",
        )(fn)
        fn = click.option(
            f"--add-{kind}",
            multiple=True,
            metavar="PKG",
            help=f"Add {_article(kind)} {kind} package.",
        )(fn)
    return fn


#: both commands that build: what to do with the containers of the old build afterwards
_recreate_option = click.option(
    "--recreate/--no-recreate",
    default=None,
    help="Move the containers of the old build to the new one without asking (or don't).",
)


@click.command()
@click.argument("name")
@_pkg_options
@click.option("--base", metavar="KEY|REF", help="Change the base image.")
@click.option("--requirements", metavar="FILE", help="Use this requirements.txt.")
@click.option("--dir", "directory", metavar="DIR", help="The definition directory.")
@click.option("--rebuild/--no-rebuild", default=None, help="Rebuild without asking (or don't).")
@_recreate_option
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: rebuild, and recreate containers.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def update(
    state: CliState,
    name: str,
    base: str | None,
    requirements: str | None,
    directory: str | None,
    rebuild: bool | None,
    recreate: bool | None,
    yes: bool,
    as_json: bool,
    **packages: tuple[str, ...],
) -> None:
    """Change image NAME's packages or base, then offer to rebuild it and to move the
    containers of the old build to the new one.

    With no options it checks whether the Dockerfile was edited since the last build and
    offers the rebuild. Without a terminal (or with --yes) it rebuilds; containers are
    recreated only with --yes or --recreate. Examples:

        ds01 image update vision --add-pip wandb --remove-pip timm

        ds01 image update vision --yes
    """
    session = session_for(state, ask=interactive(yes, as_json), as_json=as_json)
    where, row = _locate(session, name, directory)
    spec = load_spec(where)
    adds = {k: packages.get(f"add_{k}") or () for k in PACKAGE_KINDS}
    removes = {k: packages.get(f"remove_{k}") or () for k in PACKAGE_KINDS}
    changes = _edit(spec, adds, removes)
    if base is not None:
        ref, key, _ = resolve_base(session.settings, base)
        if ref != spec.base:
            changes.append(f"base {spec.base} -> {ref}")
        spec.base, spec.base_key = ref, key
    if requirements is not None:
        spec.requirements = copy_requirements(where, requirements)
        changes.append(f"requirements {spec.requirements}")
    if changes:
        write_definition(where, spec, entry_for(session.settings, spec.base_key, spec.base))
        session.say(f"Updated {where / SPEC_FILE} and the Dockerfile:")
        for line in changes:
            session.say(f"  {line}")
    stale = out_of_date(session, row, where, spec)
    data: dict[str, Any] = {"changes": changes, "directory": str(where), "built": None}
    if not stale and not rebuild:
        session.say(f"{row.ref if row else name} is up to date with {where}/Dockerfile")
        data.update(_recreate_old(session, name, row, recreate, yes))
        if as_json:
            print_json(data)
        return
    if not changes:
        session.say(
            f"{where}/Dockerfile{' or ' + spec.requirements if spec.requirements else ''} "
            f"changed since {row.ref} was built"
            if row
            else f"{session.settings.repository(name)} has not been built yet"
        )
    if rebuild is None:
        rebuild = (
            Confirm.ask("Rebuild it now?", default=True, console=session.console)
            if session.ask
            else True
        )
    if not rebuild:
        session.say(f"Rebuild it later with: ds01 image rebuild {name}")
        if as_json:
            print_json(data)
        return
    result = build(session, where, spec)
    data["built"] = report(session, result, where)
    data.update(follow_up(session, row, result, recreate, yes))
    if as_json:
        print_json(data)


def _recreate_old(
    session: Session, name: str, row: ImageRow | None, recreate: bool | None, yes: bool
) -> dict[str, Any]:
    """With ``--recreate``: containers on an older build of ``name`` move to the current one."""
    if row is None or not (recreate or (recreate is None and yes)):
        return {"recreated": []}
    rows = user_images(session.settings, session.api)
    old = [r.id for r in rows if r.name == name and r.old and r.containers]
    if not old:
        return {"recreated": []}
    done = recreate_containers(
        session.state, session.settings, session.api, old, row.ref, console=session.console
    )
    for container in done:
        session.say(f"recreated {container} on {row.ref}")
    return {"recreated": done}


@click.command()
@click.argument("name")
@click.option("--no-cache", "nocache", is_flag=True, help="Build every step again.")
@click.option("--dir", "directory", metavar="DIR", help="The definition directory.")
@_recreate_option
@click.option("--yes", "-y", is_flag=True, help="Ask nothing (recreates containers).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_state
def rebuild(
    state: CliState,
    name: str,
    nocache: bool,
    directory: str | None,
    recreate: bool | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Build image NAME again from its definition (a newer base, a changed Dockerfile)."""
    session = session_for(state, ask=interactive(yes, as_json), as_json=as_json)
    where, row = _locate(session, name, directory)
    spec = load_spec(where)
    result = build(session, where, spec, nocache=nocache)
    data = report(session, result, where)
    data.update(follow_up(session, row, result, recreate, yes))
    if as_json:
        print_json(data)
