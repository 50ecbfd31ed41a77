"""``ds01 setup``'s way to the project commands: create the first project and start it, by
calling the project modules' functions (never by running ``ds01`` again).

Errors are the project modules' own service errors: ``Invalid`` for a wrong name or flag
(the wizard exits 2), any other ``ServiceError`` for what went wrong (a ✗ line).
"""

from __future__ import annotations

from typing import Any

import attrs

from ds01_projects.settings import Settings


@attrs.frozen
class Done:
    """One line for the wizard, and what changed."""

    message: str
    changed: tuple[str, ...] = ()


def init(state: Any, settings: Settings, name: str, *, base: str | None, gpus: int | None) -> Done:
    """``ds01 project init NAME --yes`` with the wizard's base and GPUs."""
    from ds01_projects.init import InitRequest, init_project
    from ds01_projects.project import GpuChoice, check_name

    del state  # init works on the user's files only
    check_name(name)
    gpu = GpuChoice.from_flags(gpus, None, False)
    result = init_project(settings, InitRequest(name, base=base or settings.default_base, gpu=gpu))
    p = result.project
    changed = tuple(f"{f.path}: {f.action}" for f in result.files if f.action != "kept")
    verb = "created" if result.new else "already there"
    return Done(f"project {p.name} {verb} in {p.directory} ({p.gpu.describe()})", changed)


def launch(state: Any, settings: Settings, name: str) -> Done:
    """``ds01 project launch NAME``: build the image if needed, start the container."""
    from rich.console import Console

    from ds01_projects.launch import launch as launch_project
    from ds01_projects.project import find_project

    project = find_project(settings, name)
    result = launch_project(state, settings, project, console=Console(stderr=True))
    slots = ", ".join(result.slots) or "none"
    what = {"created": "created and started", "started": "started", "running": "running"}
    message = f"container {result.container} {what.get(result.action, result.action)}"
    return Done(
        f"{message} (image {result.image}; GPU slots: {slots})",
        (f"container {result.container}",) if result.action != "running" else (),
    )
