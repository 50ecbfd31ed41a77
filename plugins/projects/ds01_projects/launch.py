"""``ds01 project launch``'s work: the project's image up to date, its container created or started.

The image is built through the gateway as the user when it is missing or its definition
changed since it was built (the Dockerfile's hash is a label of the image). The container is
created by the core's ``containers.create`` (the GPU admission, the workspace check, the
``ds01.project`` and ``ds01.workspace`` labels), never by a raw Docker call.
"""

from __future__ import annotations

from typing import Any

import attrs
import docker.errors
from rich.console import Console

from ds01_core.api import Conflict
from ds01_projects import imagespec
from ds01_projects.build import (
    LABEL_HASH,
    BuildResult,
    build_image,
    definition_hash,
    last_built,
)
from ds01_projects.gateway_client import BUILD_TIMEOUT, gateway_api
from ds01_projects.project import GpuChoice, Project
from ds01_projects.settings import Settings

#: keeps the container up for ``docker exec`` and VS Code whatever the image's own command
KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while sleep 3600 & wait $!; do :; done"]


@attrs.frozen
class LaunchResult:
    """What ``launch`` did: the image (built or not), the container and what happened to it."""

    project: Project
    image: str
    built: BuildResult | None
    container: str
    #: ``created``, ``started`` or ``running`` (it already was)
    action: str
    slots: tuple[str, ...] = ()
    warning: str | None = None
    #: the container runs an older image than the project's current one
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project.name,
            "directory": str(self.project.directory),
            "image": self.image,
            "built": self.built is not None,
            "build_log": str(self.built.log_path) if self.built else None,
            "container": self.container,
            "action": self.action,
            "gpu_slots": list(self.slots),
            "warning": self.warning,
            "stale_image": self.stale,
        }


def _inspect_image(api: Any, ref: str) -> dict[str, Any] | None:
    try:
        return dict(api.inspect_image(ref))
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise Conflict(f"cannot inspect the image {ref}: {exc.explanation or exc}") from None


def _pull(api: Any, ref: str, console: Console | None) -> None:
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    try:
        with console.status(f"pulling {ref}") if console else _null():
            for chunk in api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise Conflict(f"cannot pull {ref}: {chunk['error']}")
    except docker.errors.APIError as exc:
        raise Conflict(
            f"the image {ref} is not on this server and cannot be pulled: {exc.explanation or exc}"
        ) from None


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def ensure_image(
    settings: Settings,
    project: Project,
    *,
    rebuild: bool = False,
    console: Console | None = None,
    quiet: bool = False,
) -> tuple[str, BuildResult | None]:
    """The project's image reference, built first when needed; the build when there was one."""
    api = gateway_api(settings, timeout=BUILD_TIMEOUT)
    if project.image_ref:
        if _inspect_image(api, project.image_ref) is None:
            _pull(api, project.image_ref, None if quiet else console)
        return project.image_ref, None
    spec = imagespec.load_spec(project.directory)
    ref = f"{settings.repository(spec.name)}:{spec.tag}"
    image = _inspect_image(api, ref)
    current = definition_hash(project.directory, spec.requirements)
    if image is not None and not rebuild and _up_to_date(project, ref, image, current):
        return ref, None
    if console is not None and not quiet:
        why = (
            "not built yet"
            if image is None
            else "--rebuild"
            if rebuild
            else "its Dockerfile changed since the last build"
        )
        console.print(f"Building {ref} ({why}) …")
    built = build_image(settings, project.directory, spec, console=console, quiet=quiet)
    return built.ref, built


def _up_to_date(project: Project, ref: str, image: dict[str, Any], current: str) -> bool:
    """Built from the definition as it is now: the image's label says so, or (where the
    gateway keeps ``ds01.*`` build labels to itself) the record of the last build does, for
    this very image."""
    labels = (image.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_HASH) == current:
        return True
    built = last_built(project.directory)
    return (
        built.get("ref") == ref
        and built.get("id") == image.get("Id")
        and built.get("dockerfile_sha256") == current
    )


def _container(settings: Settings, name: str) -> dict[str, Any] | None:
    api = gateway_api(settings)
    try:
        return dict(api.inspect_container(name))
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise Conflict(f"cannot use the container name {name}: {exc.explanation or exc}") from None


def launch(
    state: Any,
    settings: Settings,
    project: Project,
    *,
    gpu: GpuChoice | None = None,
    rebuild: bool = False,
    console: Console | None = None,
    quiet: bool = False,
) -> LaunchResult:
    """Build if needed, then create (or start) the project's container."""
    ref, built = ensure_image(settings, project, rebuild=rebuild, console=console, quiet=quiet)
    existing = _container(settings, project.container)
    if existing is not None:
        image_id = (existing.get("Image") or "").strip()
        current = _image_id(settings, ref)
        stale = bool(current) and image_id != current
        slots = _slots(existing)
        if (existing.get("State") or {}).get("Running"):
            return LaunchResult(
                project, ref, built, project.container, "running", slots, None, stale
            )
        state.call("containers.start", name=project.container)
        return LaunchResult(project, ref, built, project.container, "started", slots, None, stale)
    choice = gpu or project.gpu
    created = state.call(
        "containers.create",
        client_timeout=None,
        name=project.container,
        image=ref,
        workspace=str(project.directory),
        project=project.name,
        command=KEEP_ALIVE,
        **choice.create_params(),
    )
    state.call("containers.start", name=project.container)
    return LaunchResult(
        project,
        ref,
        built,
        project.container,
        "created",
        tuple(created.get("slots") or ()),
        created.get("warning"),
    )


def _image_id(settings: Settings, ref: str) -> str:
    image = _inspect_image(gateway_api(settings), ref)
    return str((image or {}).get("Id") or "")


def _slots(inspect: dict[str, Any]) -> tuple[str, ...]:
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    text = labels.get("ds01.gpu.slots") or ""
    return tuple(s for s in text.split(",") if s)
