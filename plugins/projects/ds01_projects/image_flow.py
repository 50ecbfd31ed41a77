"""What ``ds01 image create``, ``update`` and ``rebuild`` share: check the limits, build, tell
the user what came out, and deal with the build it replaced (removed when nothing uses it,
else its containers offered a move to the new one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.prompt import Confirm

from ds01_core.api import ServiceError, format_bytes, format_duration
from ds01_projects.build import LABEL_HASH, BuildResult, build_image, definition_hash, last_built
from ds01_projects.images import (
    ImageRow,
    check_image_limits,
    containers_using,
    docker_call,
    user_images,
)
from ds01_projects.imagespec import DOCKERFILE, ImageSpec
from ds01_projects.recreate import recreate_containers
from ds01_projects.settings import Settings


@attrs.define
class Session:
    """One ``ds01 image`` command's context: the state, settings, gateway and console."""

    state: Any
    settings: Settings
    api: Any
    console: Console
    ask: bool
    as_json: bool = False

    def say(self, text: str) -> None:
        """A line for people (stderr under ``--json``, so stdout stays JSON)."""
        click.echo(text, err=self.as_json)


def built_hash(session: Session, row: ImageRow | None, directory: Path) -> str | None:
    """The definition hash the image was built from: its label, else ``.ds01/built.json``."""
    if row is not None:
        with docker_call("inspecting your image"):
            labels = (session.api.inspect_image(row.id).get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_HASH):
            return str(labels[LABEL_HASH])
    data = last_built(directory)
    if row is not None and data.get("id") == row.id:
        return str(data.get("dockerfile_sha256") or "") or None
    return None


def out_of_date(session: Session, row: ImageRow | None, directory: Path, spec: ImageSpec) -> bool:
    """The Dockerfile (or the requirements file) changed since the image was built."""
    if row is None:
        return True
    return built_hash(session, row, directory) != definition_hash(directory, spec.requirements)


def build(
    session: Session, directory: Path, spec: ImageSpec, *, nocache: bool = False
) -> BuildResult:
    """Check the image limits (refusing in the gateway's words), then build with progress."""
    rows = user_images(session.settings, session.api)
    standing = check_image_limits(
        session.settings, rows, f"{session.settings.repository(spec.name)}:{spec.tag}"
    )
    if standing:
        session.say(standing)
    return build_image(
        session.settings,
        directory,
        spec,
        console=session.console,
        nocache=nocache,
        quiet=session.as_json,
    )


def report(session: Session, result: BuildResult, directory: Path) -> dict[str, Any]:
    """Say what was built and where its files are; the same as JSON."""
    with docker_call("inspecting your image"):
        size = int(session.api.inspect_image(result.image_id).get("Size") or 0)
    session.say(f"Built {result.ref} ({format_bytes(size)}) in {format_duration(result.seconds)}")
    session.say(f"  Dockerfile: {directory / DOCKERFILE}")
    session.say(f"  build log:  {result.log_path}")
    return {
        "ref": result.ref,
        "id": result.image_id,
        "size": size,
        "seconds": round(result.seconds, 3),
        "directory": str(directory),
        "dockerfile": str(directory / DOCKERFILE),
        "log": str(result.log_path),
    }


def follow_up(
    session: Session, old: ImageRow | None, result: BuildResult, recreate: bool | None, yes: bool
) -> dict[str, Any]:
    """After a rebuild: move the old build's containers (asked; ``--recreate``; ``--yes``) and
    remove the old build when nothing uses it any more."""
    if old is None or old.id == result.image_id:
        return {"recreated": [], "old_removed": False}
    users = containers_using(session.api, old.id)
    recreated: list[str] = []
    if users:
        names = ", ".join(users)
        if recreate is None:
            if session.ask:
                recreate = Confirm.ask(
                    f"{names} still use{'s' if len(users) == 1 else ''} the old build: make "
                    f"{'it' if len(users) == 1 else 'them'} again on the new one (running ones "
                    "are restarted; files outside /workspace are lost)?",
                    default=False,
                    console=session.console,
                )
            else:
                recreate = yes
        if recreate:
            recreated = recreate_containers(
                session.state,
                session.settings,
                session.api,
                [old.id],
                result.ref,
                console=session.console,
            )
            for name in recreated:
                session.say(f"recreated {name} on {result.ref}")
        else:
            session.say(
                f"{names} still use the old build; `ds01 image update {old.name} --recreate` "
                "or remove and create them again to use the new one"
            )
    removed = False
    if not containers_using(session.api, old.id):
        try:
            with docker_call("removing the old build"):
                session.api.remove_image(old.id)
            removed = True
        except ServiceError:  # the old build is only space to free: never fail on it
            removed = False
    return {"recreated": recreated, "old_removed": removed}
