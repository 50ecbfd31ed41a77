"""``ds01 project list``: the user's projects and the containers that belong to them.

Projects are the folders of the workspace root with a ``ds01-project.yaml``; containers come
from the gateway (so only the user's own): a project's own container by name, containers the
core labelled ``ds01.project`` (a project elsewhere shows up through them), and dev containers
by the label the Dev Containers CLI gives them (``devcontainer.local_folder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors

from ds01_core.api import Conflict, ServiceError
from ds01_projects import imagespec
from ds01_projects.gateway_client import gateway_api
from ds01_projects.project import PROJECT_FILE, Project, load_project
from ds01_projects.settings import Settings

PROJECT_LABEL = "ds01.project"
WORKSPACE_LABEL = "ds01.workspace"
DEVCONTAINER_LABEL = "devcontainer.local_folder"


def _projects(root: Path) -> list[tuple[Path, Project | None, str | None]]:
    found: list[tuple[Path, Project | None, str | None]] = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return found
    for folder in folders:
        if not (folder / PROJECT_FILE).is_file():
            continue
        try:
            found.append((folder, load_project(folder), None))
        except ServiceError as exc:
            found.append((folder, None, exc.message))
    return found


def _containers(settings: Settings) -> list[dict[str, Any]]:
    try:
        return list(gateway_api(settings).containers(all=True))
    except docker.errors.APIError as exc:
        raise Conflict(f"cannot list your containers: {exc.explanation or exc}") from None


def _name(container: dict[str, Any]) -> str:
    names = container.get("Names") or ["?"]
    return str(names[0]).lstrip("/")


def _slots(container: dict[str, Any] | None) -> list[str]:
    text = ((container or {}).get("Labels") or {}).get("ds01.gpu.slots") or ""
    return [s for s in text.split(",") if s]


def _image(settings: Settings, project: Project) -> str:
    if project.image_ref:
        return project.image_ref
    try:
        tag = imagespec.load_spec(project.directory).tag
    except ServiceError:
        tag = "latest"
    return f"{settings.repository(project.image)}:{tag}"


def list_projects(settings: Settings) -> list[dict[str, Any]]:
    """One row per project (``name``, ``directory``, ``image``, ``container``, ``state``,
    ``gpu``, ``gpu_slots``, ``dev_containers``, ``problem``)."""
    containers = _containers(settings)
    by_name = {_name(c): c for c in containers}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for folder, project, problem in _projects(Path(settings.workspace_root)):
        dev = [
            {"name": _name(c), "state": c.get("State"), "gpu_slots": _slots(c)}
            for c in containers
            if (c.get("Labels") or {}).get(DEVCONTAINER_LABEL) == str(folder)
        ]
        if project is None:
            rows.append(_row(folder.name, folder, "-", "-", "-", "-", [], dev, problem))
            continue
        own = by_name.get(project.container)
        seen.add(project.container)
        state = str(own.get("State")) if own else "not created"
        image = _image(settings, project)
        gpu = project.gpu.describe()
        rows.append(
            _row(project.name, folder, image, project.container, state, gpu, _slots(own), dev)
        )
    for container in containers:
        labels = container.get("Labels") or {}
        name = _name(container)
        if PROJECT_LABEL not in labels or name in seen:
            continue
        folder = Path(labels.get(WORKSPACE_LABEL) or "?")
        rows.append(
            _row(
                labels[PROJECT_LABEL],
                folder,
                str(container.get("Image") or "-"),
                name,
                str(container.get("State") or "-"),
                "-",
                _slots(container),
                [],
            )
        )
    return rows


def _row(
    name: str,
    folder: Path,
    image: str,
    container: str,
    state: str,
    gpu: str,
    slots: list[str],
    dev: list[dict[str, Any]],
    problem: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "directory": str(folder),
        "image": image,
        "container": container,
        "state": state if problem is None else "broken",
        "gpu": gpu,
        "gpu_slots": slots,
        "dev_containers": dev,
        "problem": problem,
    }
