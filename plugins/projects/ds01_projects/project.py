"""The project model: a folder with ``ds01-project.yaml`` naming its image, GPU request and container.

A project lives in ``<workspace_root>/<NAME>`` (or any folder given with ``--dir``). Its image
is either built from the folder's own definition (``ds01-image.yaml`` + ``Dockerfile``, image
name = project name, ``ds01/<user>/<name>``) or an existing image named in the file. Loading
a hand-edited file names the field that is wrong and what to write instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import attrs
import yaml

from ds01_core.api import Invalid, NotFound, ServiceError
from ds01_projects.settings import Settings

PROJECT_FILE = "ds01-project.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CONTAINER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_MIG = re.compile(r"^\d+(c\.\d+)?g\.\d+gb$")


class ProjectError(ServiceError):
    """A project that cannot be read or written; the message says what to do (exit 1)."""


class ProjectUsageError(Invalid):
    """Bad input on the command line (exit 2)."""


class ProjectNotFound(NotFound):
    """No such project (exit 1)."""


def check_name(name: str) -> str:
    """A project name is an image name too: lower-case letters, digits, ``_ . -``."""
    if not _NAME.match(name or ""):
        raise ProjectUsageError(
            f"invalid project name {name!r}: use lower-case letters, digits, '_', '.', '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def check_mig(profile: str) -> str:
    if not _MIG.match(profile):
        raise ProjectUsageError(
            f"invalid MIG profile {profile!r}: write it as nvidia-smi does, e.g. 2g.20gb"
        )
    return profile


@attrs.define
class GpuChoice:
    """What the project's container asks for: a number of GPUs, a MIG profile, or none."""

    gpus: int | None = None
    mig: str | None = None
    cpu_only: bool = False

    @classmethod
    def from_flags(cls, gpus: int | None, mig: str | None, cpu_only: bool) -> GpuChoice | None:
        """The flags given, or None when none was (the caller keeps what it had)."""
        if sum([gpus is not None, mig is not None, cpu_only]) > 1:
            raise ProjectUsageError("choose one of --gpus, --mig, --cpu-only")
        if gpus is not None:
            if gpus < 0:
                raise ProjectUsageError(f"--gpus must be 0 or more, got {gpus}")
            return cls(cpu_only=True) if gpus == 0 else cls(gpus=gpus)
        if mig is not None:
            return cls(mig=check_mig(mig))
        if cpu_only:
            return cls(cpu_only=True)
        return None

    @classmethod
    def default(cls, default_gpus: int) -> GpuChoice:
        return cls(gpus=default_gpus) if default_gpus > 0 else cls(cpu_only=True)

    def describe(self) -> str:
        if self.cpu_only:
            return "no GPU"
        if self.mig:
            return f"MIG {self.mig}"
        return f"{self.gpus or 1} GPU" + ("s" if (self.gpus or 1) > 1 else "")

    def create_params(self) -> dict[str, Any]:
        """The GPU part of ``containers.create``'s parameters."""
        if self.cpu_only:
            return {"cpu_only": True}
        if self.mig:
            return {"mig": self.mig}
        return {"gpus": self.gpus or 1}


@attrs.define
class Project:
    """One project: where it is, its image, what its container asks for, and its name."""

    name: str
    directory: Path
    container: str
    gpu: GpuChoice = attrs.Factory(GpuChoice)
    #: an existing image to use; None: the folder's own definition (image name = ``image``)
    image_ref: str | None = None
    #: the name of the image built from the folder's definition (``ds01/<user>/<image>``)
    image: str = ""

    @property
    def file(self) -> Path:
        return self.directory / PROJECT_FILE

    @property
    def builds_image(self) -> bool:
        return self.image_ref is None

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.image_ref:
            data["image_ref"] = self.image_ref
        else:
            data["image"] = self.image or self.name
        if self.gpu.cpu_only:
            data["gpus"] = 0
        elif self.gpu.mig:
            data["mig"] = self.gpu.mig
        else:
            data["gpus"] = self.gpu.gpus or 1
        data["container"] = self.container
        return data


def default_container(settings: Settings, name: str) -> str:
    """Container names are one namespace for every user of the engine: ``<user>-<project>``."""
    return f"{settings.user}-{name}"


def project_dir(settings: Settings, name: str, directory: str | None) -> Path:
    """``--dir DIR`` (made absolute), else ``<workspace_root>/<NAME>``."""
    if directory:
        return Path(os.path.abspath(os.path.expanduser(directory)))
    return Path(settings.workspace_root) / name


def load_project(directory: Path) -> Project:
    """Read ``<directory>/ds01-project.yaml``; every problem named with its field."""
    path = directory / PROJECT_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectNotFound(
            f"{directory} is not a ds01 project (no {PROJECT_FILE}); "
            "create one with `ds01 project init NAME`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {exc}") from None
    return project_from_yaml(data, directory)


def _field(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(f"{path}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def project_from_yaml(data: Any, directory: Path) -> Project:
    path = directory / PROJECT_FILE
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: expected a mapping (name:, image:, gpus:, container:)")
    unknown = sorted(set(data) - {"name", "image", "image_ref", "gpus", "mig", "container"})
    if unknown:
        raise ProjectError(
            f"{path}: unknown field(s) {', '.join(map(str, unknown))}; "
            "known: name, image, image_ref, gpus, mig, container"
        )
    name = _field(data, "name", path)
    if name is None:
        raise ProjectError(f"{path}: name is missing")
    try:
        check_name(name)
    except ProjectUsageError as exc:
        raise ProjectError(f"{path}: {exc}") from None
    image_ref = _field(data, "image_ref", path)
    image = _field(data, "image", path) or name
    if image_ref is None and not _NAME.match(image):
        raise ProjectError(f"{path}: image {image!r} is not a valid image name")
    gpus, mig = data.get("gpus"), _field(data, "mig", path)
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
        raise ProjectError(f"{path}: gpus must be a whole number (0 for none), got {gpus!r}")
    if gpus is not None and mig is not None:
        raise ProjectError(f"{path}: give gpus or mig, not both")
    if mig is not None and not _MIG.match(mig):
        raise ProjectError(f"{path}: mig {mig!r} is not a MIG profile (e.g. 2g.20gb)")
    gpu = GpuChoice(mig=mig) if mig else GpuChoice(gpus=gpus or None, cpu_only=gpus == 0)
    container = _field(data, "container", path)
    if container is None:
        raise ProjectError(f"{path}: container is missing (the container's name)")
    if not _CONTAINER.match(container):
        raise ProjectError(
            f"{path}: container {container!r} is not a container name "
            "(letters, digits, '_', '.', '-')"
        )
    return Project(name, directory, container, gpu, image_ref, image)


def save_project(project: Project) -> None:
    """Write the project file (with a comment saying what it is)."""
    text = (
        "# ds01 project (`ds01 project launch` reads it; see docs/projects.md)\n"
        + yaml.safe_dump(project.to_yaml(), sort_keys=False)
    )
    project.file.write_text(text, encoding="utf-8")


def find_project(settings: Settings, name: str | None, cwd: Path | None = None) -> Project:
    """Project ``name`` in the workspace root, or the project around the current directory."""
    if name:
        if "/" in name or name.startswith("."):
            return load_project(Path(os.path.abspath(os.path.expanduser(name))))
        check_name(name)
        directory = Path(settings.workspace_root) / name
        if not (directory / PROJECT_FILE).is_file():
            raise ProjectNotFound(
                f"no project {name!r} in {settings.workspace_root} "
                "(see `ds01 project list`; a project elsewhere: give its folder, e.g. ./NAME)"
            )
        return load_project(directory)
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return load_project(folder)
    raise ProjectUsageError(
        f"{here} is not inside a ds01 project: name one (`ds01 project launch NAME`) "
        "or cd into its folder"
    )
