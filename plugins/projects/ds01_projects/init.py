"""``ds01 project init``'s work, without the prompts: the folder, the image definition and the files.

Runs as the user, in the user's own process: every file is the user's. Refuses a folder that
holds something else (unless forced); on its own project it is harmless to run again
(:mod:`ds01_projects.scaffold` keeps what the user changed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from ds01_core.api import Conflict, Invalid
from ds01_projects import imagespec
from ds01_projects.config import CatalogueEntry
from ds01_projects.devcontainer import DEVCONTAINER_DIR, DEVCONTAINER_FILE, render_devcontainer
from ds01_projects.project import (
    PROJECT_FILE,
    GpuChoice,
    Project,
    ProjectError,
    check_name,
    default_container,
    load_project,
    project_dir,
    save_project,
)
from ds01_projects.scaffold import DOCKERIGNORE, GITIGNORE, Generated, Outcome, readme_text
from ds01_projects.settings import Settings

#: a new project folder (and a new workspace root) is the user's alone
FOLDER_MODE = 0o700


@attrs.define
class InitRequest:
    """What ``ds01 project init`` was asked (after any prompts)."""

    name: str
    base: str | None = None
    pip: Sequence[str] = ()
    image: str | None = None
    gpu: GpuChoice | None = None
    directory: str | None = None
    force: bool = False


@attrs.frozen
class InitResult:
    project: Project
    new: bool
    files: tuple[Outcome, ...]

    def to_json(self) -> dict[str, object]:
        p = self.project
        return {
            "name": p.name,
            "directory": str(p.directory),
            "new": self.new,
            "image": p.image_ref or p.image,
            "builds_image": p.builds_image,
            "container": p.container,
            "gpu": p.gpu.describe(),
            "files": [{"path": f.path, "action": f.action} for f in self.files],
        }


def resolve_base(settings: Settings, text: str | None) -> tuple[str, str | None, CatalogueEntry]:
    """``--base KEY|REF`` → (image reference, catalogue key or None, install commands)."""
    keys = ", ".join(settings.catalogue) or "none configured"
    if text is None:
        text = settings.default_base
        if text is None:
            raise Invalid(f"choose a base image with --base (catalogue: {keys}) or use --image")
    entry = settings.catalogue.get(text)
    if entry is not None:
        return entry.ref, text, entry
    if ":" not in text and "/" not in text:
        raise Invalid(f"no base {text!r} in the catalogue (choose one of: {keys}, or an image:tag)")
    if not settings.base_allowed(text):
        raise Invalid(
            f"the base {text} is not allowed here: choose one of the catalogue ({keys}) "
            "(the admin allows only those)"
        )
    return text, None, CatalogueEntry(image=text.rsplit(":", 1)[0])


def _existing(directory: Path, name: str, force: bool) -> Project | None:
    """The project already in ``directory`` (a re-run), None for a new or empty folder."""
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise Conflict(f"{directory} exists and is not a folder: choose another name or --dir")
    if (directory / PROJECT_FILE).is_file():
        project = load_project(directory)
        if project.name != name:
            raise Conflict(
                f"{directory} is the project {project.name!r}, not {name!r}: "
                "choose another --dir (or `ds01 project init " + project.name + "` to redo it)"
            )
        return project
    if any(directory.iterdir()) and not force:
        raise Conflict(
            f"{directory} exists and is not empty: choose another name or --dir, or add "
            "--force to make a project of it (files of the same names are kept)"
        )
    return None


def _make_folder(directory: Path) -> None:
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ProjectError(f"cannot create {folder}: {exc.strerror}") from None
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is masked by the umask


def init_project(settings: Settings, request: InitRequest) -> InitResult:
    """Create (or complete) the project ``request.name``; see the module's docstring."""
    name = check_name(request.name)
    directory = project_dir(settings, name, request.directory)
    existing = _existing(directory, name, request.force)
    before = existing.to_yaml() if existing is not None else None
    if existing is not None:
        project = existing
        if request.gpu is not None:
            project.gpu = request.gpu
        if request.image and request.image != project.image_ref:
            raise Conflict(
                f"{directory} is a project already; to use the image {request.image}, "
                f"set image_ref in {PROJECT_FILE}"
            )
    else:
        project = Project(
            name=name,
            directory=directory,
            container=default_container(settings, name),
            gpu=request.gpu or GpuChoice.default(settings.default_gpus),
            image_ref=request.image,
            image=name,
        )
    pip = [imagespec.check_package("pip", p) for p in request.pip]
    if request.image and (request.base or pip):
        raise Invalid("--image uses an existing image: --base and --pip do not apply to it")
    spec = _new_spec(settings, project, request.base, pip) if project.builds_image else None
    _make_folder(directory)
    files = Generated(directory)
    _write_project_file(project, files, before)
    if spec is not None:
        _write_definition(settings, project, spec, files)
    elif project.builds_image:
        files.note(imagespec.SPEC_FILE, "exists")
    uid, gid = os.getuid(), os.getgid()
    dev = f"{DEVCONTAINER_DIR}/{DEVCONTAINER_FILE}"
    files.write(dev, render_devcontainer(project, uid, gid))
    files.write(".gitignore", GITIGNORE)
    if project.builds_image:
        files.write(".dockerignore", DOCKERIGNORE)
    files.write("README.md", readme_text(project, settings.repository(project.image)))
    files.save()
    return InitResult(project, existing is None, tuple(files.outcomes))


def _write_project_file(
    project: Project, files: Generated, before: dict[str, object] | None
) -> None:
    if before is not None and before == project.to_yaml():
        files.note(PROJECT_FILE, "unchanged")
        return
    save_project(project)
    files.note(PROJECT_FILE, "updated" if before is not None else "created")


def _new_spec(
    settings: Settings, project: Project, base: str | None, pip: list[str]
) -> imagespec.ImageSpec | None:
    """The definition of a new project (checked before anything is written); None when the
    project has one: it is the user's (changed with ``ds01 image update``), left alone."""
    if (project.directory / imagespec.SPEC_FILE).is_file():
        if base or pip:
            raise Conflict(
                f"{project.directory / imagespec.SPEC_FILE} exists: change the base or "
                f"packages with `ds01 image update {project.image} --add-pip PKG` (or edit it)"
            )
        return None
    ref, key, _ = resolve_base(settings, base)
    return imagespec.ImageSpec(name=project.image, base=ref, base_key=key, pip=pip)


def _write_definition(
    settings: Settings, project: Project, spec: imagespec.ImageSpec, files: Generated
) -> None:
    entry = settings.catalogue.get(spec.base_key or "")
    had_dockerfile = (project.directory / imagespec.DOCKERFILE).exists()
    imagespec.write_definition(project.directory, spec, entry)
    files.note(imagespec.SPEC_FILE, "created")
    if had_dockerfile and (project.directory / f"{imagespec.DOCKERFILE}.bak").exists():
        files.note(imagespec.DOCKERFILE, "created (yours is now Dockerfile.bak)")
    else:
        files.note(imagespec.DOCKERFILE, "created")
