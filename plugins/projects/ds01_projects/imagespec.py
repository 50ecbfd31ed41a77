"""An image definition: ``ds01-image.yaml`` (what the user asked for) and the Dockerfile ds01
renders from it, which stays readable and keeps the user's own steps when re-rendered.

The YAML file is the machine-readable truth (base, pip/conda/apt packages, requirements file);
the Dockerfile is for people and for ``docker build``. A marked section at its end belongs to
the user: ``ds01 image update`` re-renders everything above it and keeps what is below.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import attrs
import yaml

from ds01_core.api import Invalid
from ds01_projects.config import CatalogueEntry

SPEC_FILE = "ds01-image.yaml"
DOCKERFILE = "Dockerfile"
#: the line after which the Dockerfile belongs to the user
USER_MARKER = "# --- your own steps below this line are kept by ds01 image update ---"
#: a Docker repository path component (the image's name under ``ds01/<user>/``)
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
TAG_RULE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PACKAGE_KINDS = ("pip", "conda", "apt")
_DEFAULT_USER_SECTION = (
    "# Add your own Dockerfile steps here (RUN, ENV, COPY …); `ds01 image update` keeps them.\n"
)


@attrs.define
class ImageSpec:
    """What an image is made of; saved as ``ds01-image.yaml`` next to its Dockerfile."""

    name: str
    #: the base image reference, e.g. ``pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime``
    base: str
    #: the catalogue key the base came from (None: a base the user named)
    base_key: str | None = None
    pip: list[str] = attrs.Factory(list)
    conda: list[str] = attrs.Factory(list)
    apt: list[str] = attrs.Factory(list)
    #: a requirements file relative to the definition directory, ``pip install -r``-ed
    requirements: str | None = None
    tag: str = "latest"


def check_name(name: str) -> str:
    """``name`` if it can be an image name under ``ds01/<user>/``, else :class:`Invalid`."""
    if not NAME_RULE.match(name):
        raise Invalid(
            f"{name!r} cannot be an image name: use lower-case letters, digits, '_', '.', '-', "
            "starting with a letter or digit (e.g. 'my-pytorch')"
        )
    return name


def check_tag(tag: str) -> str:
    if not TAG_RULE.match(tag):
        raise Invalid(f"{tag!r} cannot be an image tag: use letters, digits, '_', '.', '-'")
    return tag


def check_package(kind: str, package: str) -> str:
    """A package name as the user typed it; no newlines or leading '-' (options)."""
    if not package.strip() or "\n" in package or package.strip().startswith("-"):
        raise Invalid(f"{package!r} is not {'an' if kind == 'apt' else 'a'} {kind} package name")
    return package.strip()


def _problem(path: Path, key: str, what: str) -> Invalid:
    return Invalid(f"{path}: {key}: {what} (fix the file, or recreate it with `ds01 image create`)")


def _str_list(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise _problem(path, key, "expected a list of package names")
    try:
        return [check_package(key, str(v)) for v in value]
    except Invalid as exc:
        raise _problem(path, key, exc.message) from None


def _optional_str(path: Path, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise _problem(path, key, "expected a text value")
    return str(value).strip()


def parse_spec(path: Path, text: str) -> ImageSpec:
    """The spec in ``text`` (the contents of ``path``), or :class:`Invalid` naming the key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise Invalid(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise Invalid(f"{path}: expected a mapping with name, base, pip, conda, apt …")
    known = {f.name for f in attrs.fields(ImageSpec)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise _problem(path, unknown[0], f"unknown key (known: {', '.join(sorted(known))})")
    name = _optional_str(path, data, "name")
    base = _optional_str(path, data, "base")
    if name is None:
        raise _problem(path, "name", "missing")
    if base is None:
        raise _problem(path, "base", "missing: the base image, e.g. a catalogue image")
    try:
        check_name(name)
        tag = check_tag(_optional_str(path, data, "tag") or "latest")
    except Invalid as exc:
        raise _problem(path, "name" if "name" in exc.message else "tag", exc.message) from None
    requirements = _optional_str(path, data, "requirements")
    if requirements is not None and (requirements.startswith("/") or ".." in requirements):
        raise _problem(path, "requirements", "must be a file inside the definition directory")
    return ImageSpec(
        name=name,
        base=base,
        base_key=_optional_str(path, data, "base_key"),
        pip=_str_list(path, data, "pip"),
        conda=_str_list(path, data, "conda"),
        apt=_str_list(path, data, "apt"),
        requirements=requirements,
        tag=tag,
    )


def load_spec(directory: Path) -> ImageSpec:
    """The spec in ``directory/ds01-image.yaml``; :class:`Invalid` names the file and key."""
    path = Path(directory) / SPEC_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Invalid(
            f"{path} does not exist: is {directory} an image definition? "
            "(`ds01 image create NAME` makes one)"
        ) from None
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror}") from None
    return parse_spec(path, text)


def dump_spec(spec: ImageSpec) -> str:
    data: dict[str, Any] = {"name": spec.name, "base": spec.base}
    if spec.base_key:
        data["base_key"] = spec.base_key
    data["tag"] = spec.tag
    data["pip"] = list(spec.pip)
    data["conda"] = list(spec.conda)
    data["apt"] = list(spec.apt)
    if spec.requirements:
        data["requirements"] = spec.requirements
    header = (
        "# The image `ds01 image` builds from this directory: edit it with\n"
        f"# `ds01 image update {spec.name} --add-pip PKG …` (or by hand, then"
        f" `ds01 image update {spec.name}`).\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def save_spec(directory: Path, spec: ImageSpec) -> Path:
    """Write ``directory/ds01-image.yaml`` (creating the directory) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SPEC_FILE
    _write(path, dump_spec(spec))
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _quoted(packages: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in packages)


def _run(template: str, packages: list[str]) -> str:
    return "RUN " + template.replace("{packages}", _quoted(packages))


def user_section(dockerfile_text: str | None) -> str:
    """What follows the marker line in an existing Dockerfile (the default hint when none)."""
    if not dockerfile_text or USER_MARKER not in dockerfile_text:
        return _DEFAULT_USER_SECTION
    return dockerfile_text.split(USER_MARKER, 1)[1].lstrip("\n")


def render_dockerfile(
    spec: ImageSpec, entry: CatalogueEntry | None, user_steps: str | None = None
) -> str:
    """The Dockerfile for ``spec``: generated part, marker, then ``user_steps`` (the user's
    own section; a hint when None). ``entry`` gives the install commands (defaults if None)."""
    entry = entry or CatalogueEntry(image=spec.base.rsplit(":", 1)[0])
    origin = f"the catalogue base '{spec.base_key}'" if spec.base_key else "a base you named"
    lines = [
        f"# Image ds01/<you>/{spec.name}:{spec.tag}, generated by `ds01 image` from {SPEC_FILE}.",
        f"# Change packages with `ds01 image update {spec.name} --add-pip PKG` (or --add-conda,",
        f"# --add-apt, --remove-…) or by editing {SPEC_FILE}; ds01 rewrites the part above the",
        "# marker line below and keeps your own steps under it. Rebuild with",
        f"# `ds01 image rebuild {spec.name}`.",
        "",
        f"# The base image ({origin}).",
        f"FROM {spec.base}",
        "",
    ]
    if spec.apt:
        lines += ["# System packages (apt).", _run(entry.apt_install, spec.apt), ""]
    if spec.conda:
        lines += ["# Conda packages.", _run(entry.conda_install, spec.conda), ""]
    if spec.pip:
        lines += ["# Python packages (pip).", _run(entry.pip_install, spec.pip), ""]
    if spec.requirements:
        target = f"/tmp/ds01-requirements/{Path(spec.requirements).name}"
        lines += [
            f"# Python packages from {spec.requirements} (pip install -r).",
            f"COPY {spec.requirements} {target}",
            "RUN " + entry.pip_install.replace("{packages}", f"-r {shlex.quote(target)}"),
            "",
        ]
    lines += ["WORKDIR /workspace", "", USER_MARKER]
    steps = _DEFAULT_USER_SECTION if user_steps is None else user_steps
    return "\n".join(lines) + "\n" + steps


def write_definition(directory: Path, spec: ImageSpec, entry: CatalogueEntry | None) -> Path:
    """Write ``ds01-image.yaml`` and the Dockerfile into ``directory``, keeping the user's own
    section of an existing Dockerfile; returns the Dockerfile's path."""
    directory = Path(directory)
    save_spec(directory, spec)
    dockerfile = directory / DOCKERFILE
    existing = dockerfile.read_text() if dockerfile.exists() else None
    if existing is not None and USER_MARKER not in existing:
        # the user rewrote it without the marker: keep their version next to the new one
        _write(directory / f"{DOCKERFILE}.bak", existing)
    _write(dockerfile, render_dockerfile(spec, entry, user_section(existing)))
    return dockerfile
