"""``ds01 container retire``: keep what was installed by hand in a container, then remove it.

The packages are read from the container's filesystem changes as the engine records them
(``GET /containers/{id}/changes`` through the gateway), never from the container's own tools,
which could be missing, broken or lying: an added ``…/site-packages/<name>-<version>.dist-info``
is a pip package, an added ``/var/lib/dpkg/info/<pkg>[:<arch>].list`` an apt package, an added
``…/conda-meta/<name>-<version>-<build>.json`` a conda package. They go into the image
definition the container came from (its project's, else the one its image's label names),
the Dockerfile is rendered again, and only then is the container removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import docker.errors

from ds01_core.api import Conflict, NotFound, ServiceError
from ds01_projects import imagespec
from ds01_projects.build import LABEL_DEFINITION
from ds01_projects.gateway_client import gateway_api
from ds01_projects.project import PROJECT_FILE, load_project
from ds01_projects.settings import Settings

PROJECT_LABEL = "ds01.project"
WORKSPACE_LABEL = "ds01.workspace"
#: ``docker diff`` kinds
ADDED = 1
_PIP = re.compile(r"/(?:site|dist)-packages/([^/]+)\.(dist-info|egg-info)$")
_APT = re.compile(r"^/var/lib/dpkg/info/([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9_-]+)?\.list$")
_CONDA = re.compile(r"/conda-meta/([^/]+)\.json$")
_EGG_PY = re.compile(r"-py\d+(\.\d+)*$")
#: pip's own tools: upgrading them by hand is not a package the project needs
PIP_TOOLS = frozenset({"pip", "setuptools", "wheel"})


@attrs.frozen
class Packages:
    """Packages found installed by hand, per kind, in the form ``ds01-image.yaml`` lists them."""

    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()

    def by_kind(self) -> dict[str, tuple[str, ...]]:
        return {"pip": self.pip, "apt": self.apt, "conda": self.conda}

    def __bool__(self) -> bool:
        return bool(self.pip or self.apt or self.conda)


def normalize(name: str) -> str:
    """A Python package name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip(stem: str, kind: str) -> str | None:
    if kind == "egg-info":
        stem = _EGG_PY.sub("", stem)
    name, sep, version = stem.rpartition("-")
    if not sep or not name or not version:
        return None
    if normalize(name) in PIP_TOOLS:
        return None
    return f"{normalize(name)}=={version}"


def _conda(stem: str) -> str | None:
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return f"{parts[0]}={parts[1]}"


def packages_from_changes(changes: Iterable[Mapping[str, Any]]) -> Packages:
    """The packages that the added paths of ``docker diff`` show."""
    pip: set[str] = set()
    apt: set[str] = set()
    conda: set[str] = set()
    for change in changes:
        if change.get("Kind") != ADDED:
            continue
        path = str(change.get("Path") or "")
        if match := _PIP.search(path):
            found = _pip(match.group(1), match.group(2))
            if found:
                pip.add(found)
        elif match := _APT.match(path):
            apt.add(match.group(1))
        elif match := _CONDA.search(path):
            found = _conda(match.group(1))
            if found:
                conda.add(found)
    return Packages(tuple(sorted(pip)), tuple(sorted(apt)), tuple(sorted(conda)))


def _key(kind: str, package: str) -> str:
    """What two entries of one kind are the same package by (its name, without a version)."""
    name = re.split(r"[=<>!~\[ ;@]", package, maxsplit=1)[0]
    return normalize(name) if kind == "pip" else name.split(":")[0].lower()


def merge(spec: imagespec.ImageSpec, found: Packages) -> tuple[Packages, Packages]:
    """Add ``found`` to ``spec``; returns (added, already listed), each per kind."""
    added: dict[str, list[str]] = {"pip": [], "apt": [], "conda": []}
    already: dict[str, list[str]] = {"pip": [], "apt": [], "conda": []}
    for kind, packages in found.by_kind().items():
        listed: list[str] = getattr(spec, kind)
        keys = {_key(kind, p) for p in listed}
        for package in packages:
            if _key(kind, package) in keys:
                already[kind].append(package)
            else:
                listed.append(package)
                keys.add(_key(kind, package))
                added[kind].append(package)
    return (
        Packages(*(tuple(added[k]) for k in ("pip", "apt", "conda"))),
        Packages(*(tuple(already[k]) for k in ("pip", "apt", "conda"))),
    )


@attrs.frozen
class Container:
    """The container to retire, as the gateway shows it to its owner."""

    id: str
    name: str
    image_id: str
    #: the image as the container was created with it (``ds01/<user>/NAME:TAG``)
    image_ref: str
    labels: Mapping[str, str]
    running: bool


def find_container(settings: Settings, name: str) -> Container:
    api = gateway_api(settings)
    try:
        data = api.inspect_container(name)
    except docker.errors.NotFound:
        raise NotFound(
            f"no container {name!r} of yours (see `ds01 container list --all`)"
        ) from None
    except docker.errors.APIError as exc:
        raise Conflict(_explained(exc)) from None
    config = data.get("Config") or {}
    return Container(
        id=data["Id"],
        name=str(data.get("Name") or name).lstrip("/"),
        image_id=str(data.get("Image") or ""),
        image_ref=str(config.get("Image") or ""),
        labels=dict(config.get("Labels") or {}),
        running=bool((data.get("State") or {}).get("Running")),
    )


def _explained(exc: docker.errors.APIError) -> str:
    """The gateway's own refusal as it is (it says what to do), without its ``ds01:``."""
    return str(exc.explanation or exc).removeprefix("ds01: ")


def definition_dir(settings: Settings, container: Container) -> Path | None:
    """Where the container's image is defined: its project's folder (the ``ds01.project``
    label; the folder from ``ds01.workspace``, else the workspace root), else the folder the
    image's ``ds01.image.definition`` label names, else the folder of the image's name
    (``ds01/<user>/NAME``: the project NAME, or ``images_dir/NAME``); None when none of these
    has a ``ds01-image.yaml``."""
    project = container.labels.get(PROJECT_LABEL)
    if project:
        folders = []
        if container.labels.get(WORKSPACE_LABEL):
            folders.append(Path(container.labels[WORKSPACE_LABEL]))
        folders.append(Path(settings.workspace_root) / project)
        for folder in folders:
            if _project_definition(folder, project):
                return folder
    label = _image_labels(settings, container.image_id).get(LABEL_DEFINITION)
    if label and (Path(label) / imagespec.SPEC_FILE).is_file():
        return Path(label)
    prefix = f"{settings.namespace}/"
    if not container.image_ref.startswith(prefix):
        return None
    name = container.image_ref[len(prefix) :].split("@")[0].split(":")[0]
    project_folder = Path(settings.workspace_root) / name
    if _project_definition(project_folder, None, image=name):
        return project_folder
    folder = Path(settings.images_dir) / name
    if (folder / imagespec.SPEC_FILE).is_file():
        return folder
    return None


def _project_definition(folder: Path, project: str | None, image: str | None = None) -> bool:
    """``folder`` is the project ``project`` (or the one whose image is ``image``) and holds
    its image definition."""
    if not (folder / PROJECT_FILE).is_file() or not (folder / imagespec.SPEC_FILE).is_file():
        return False
    try:
        loaded = load_project(folder)
    except ServiceError:
        return False
    if project is not None:
        return loaded.name == project
    return loaded.builds_image and loaded.image == image


def _image_labels(settings: Settings, image_id: str) -> dict[str, str]:
    try:
        image = gateway_api(settings).inspect_image(image_id)
    except (docker.errors.APIError, ServiceError):
        return {}
    return dict((image.get("Config") or {}).get("Labels") or {})


def changes(settings: Settings, container: Container) -> list[dict[str, Any]]:
    try:
        return list(gateway_api(settings).diff(container.id) or [])
    except docker.errors.APIError as exc:
        raise Conflict(
            f"cannot read the changes of {container.name}: {exc.explanation or exc}"
        ) from None


@attrs.frozen
class Saved:
    """What ``--save-packages`` did: where, what was added and what was listed already."""

    directory: Path
    added: Packages
    already: Packages


def check_definition(settings: Settings, container: Container) -> Path:
    """The definition the packages go into; :class:`Conflict` naming what was found when
    there is none (nothing has been changed or removed then)."""
    directory = definition_dir(settings, container)
    if directory is not None:
        return directory
    found = packages_from_changes(changes(settings, container))
    listed = "; ".join(f"{k}: {' '.join(v)}" for k, v in found.by_kind().items() if v)
    raise Conflict(
        f"{container.name} was not made from a ds01 project or image definition, so "
        "there is nowhere to save its packages; nothing was removed. "
        + (
            f"Found {listed}: add them to an image's {imagespec.SPEC_FILE} "
            "(`ds01 image create NAME` makes one), then retire without --save-packages"
            if found
            else "No packages installed by hand were found: retire it without --save-packages"
        )
    )


def save_packages(settings: Settings, container: Container) -> Saved:
    """Record the hand-installed packages into the definition (see :func:`check_definition`
    for a container without one)."""
    directory = check_definition(settings, container)
    found = packages_from_changes(changes(settings, container))
    spec = imagespec.load_spec(directory)
    added, already = merge(spec, found)
    if added:
        imagespec.write_definition(directory, spec, settings.catalogue.get(spec.base_key or ""))
    return Saved(directory, added, already)
