"""The ``plugins.projects:`` configuration section: the admin's catalogue of base images and
where users' projects and image definitions live.

Every field has a default, so that a missing section is a working one (an empty catalogue
then means users name any base themselves, unless ``allowed_bases`` is ``catalogue``).
"""

from __future__ import annotations

import re

import attrs

from ds01_core.api import Duration

Problem = tuple[tuple[str | int, ...], str]

#: how a catalogue base installs Python packages
PYTHON_KINDS = ("pip", "conda", "none")
ALLOWED_BASES = ("catalogue", "any")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@attrs.define
class CatalogueEntry:
    """One base image the admin offers (``plugins.projects.catalogue.<key>``)."""

    #: the repository, e.g. ``pytorch/pytorch`` or ``nvcr.io/nvidia/pytorch``
    image: str
    #: the tag users get, e.g. ``2.4.0-cuda12.1-cudnn9-runtime``
    tag: str = "latest"
    #: one line shown in ``ds01 image create`` and ``ds01 setup``
    description: str = ""
    #: how the base installs Python packages: ``pip``, ``conda`` or ``none``
    python: str = "pip"
    #: the Dockerfile commands that install packages; ``{packages}`` is replaced by the
    #: space-separated, shell-quoted package list (override for ``uv``, ``mamba`` …)
    pip_install: str = "pip install --no-cache-dir {packages}"
    conda_install: str = "conda install -y {packages} && conda clean -afy"
    apt_install: str = (
        "apt-get update && apt-get install -y --no-install-recommends {packages}"
        " && rm -rf /var/lib/apt/lists/*"
    )

    @property
    def ref(self) -> str:
        return f"{self.image}:{self.tag}"


@attrs.define
class BaseUpdatesConfig:
    """``plugins.projects.base_updates``: tell admins when a catalogue base has a newer tag."""

    enabled: bool = True
    #: how often the daemon asks the registries
    interval: Duration = Duration(86400)
    #: one registry request's timeout
    timeout: Duration = Duration(10)
    #: registries spoken to over plain HTTP (``host:port``), e.g. a mirror on loopback
    insecure_registries: list[str] = attrs.Factory(list)
    #: who is told; empty: the members of ``gateway.admin_group`` (root when it has none)
    notify_users: list[str] = attrs.Factory(list)


@attrs.define
class ProjectsConfig:
    """``plugins.projects``: the base catalogue, allowed bases, and where things live."""

    #: the bases users choose from, by key (``pytorch``, ``tensorflow``, ``jax``, ``cuda`` …)
    catalogue: dict[str, CatalogueEntry] = attrs.Factory(dict)
    #: the catalogue key ``ds01 image create`` / ``ds01 project init`` offer first
    default_base: str | None = None
    #: ``catalogue``: only catalogue bases (and ``extra_allowed_bases``); ``any``: any image
    allowed_bases: str = "any"
    #: further allowed bases as shell patterns (``nvcr.io/nvidia/*``)
    extra_allowed_bases: list[str] = attrs.Factory(list)
    #: where ``ds01 project init NAME`` puts ``NAME/``; ``{home}`` and ``{user}`` are replaced
    workspace_root: str = "{home}/projects"
    #: where a standalone image's definition lives (``<images_dir>/<name>/``)
    images_dir: str = "{home}/.ds01/images"
    #: the GPUs a project's container asks for unless the project says otherwise
    default_gpus: int = 1
    #: tell admins when a catalogue base has a newer tag
    base_updates: BaseUpdatesConfig = attrs.Factory(BaseUpdatesConfig)

    def config_problems(self) -> list[Problem]:
        """Cross-field checks, reported by the core with their paths."""
        problems: list[Problem] = []
        for key, entry in self.catalogue.items():
            if not _KEY.match(key):
                problems.append(
                    (("catalogue", key), "a key is lower-case letters, digits, '_', '.', '-'")
                )
            if entry.python not in PYTHON_KINDS:
                problems.append(
                    (
                        ("catalogue", key, "python"),
                        f"expected one of {', '.join(PYTHON_KINDS)}, got {entry.python!r}",
                    )
                )
            if not entry.image.strip() or any(c.isspace() for c in entry.image):
                problems.append((("catalogue", key, "image"), f"not an image: {entry.image!r}"))
            for field in ("pip_install", "conda_install", "apt_install"):
                if "{packages}" not in getattr(entry, field):
                    problems.append(
                        (("catalogue", key, field), "must contain {packages} where they go")
                    )
        if self.default_base is not None and self.default_base not in self.catalogue:
            problems.append(
                (("default_base",), f"{self.default_base!r} is not a key of the catalogue")
            )
        if self.allowed_bases not in ALLOWED_BASES:
            problems.append(
                (
                    ("allowed_bases",),
                    f"expected one of {', '.join(ALLOWED_BASES)}, got {self.allowed_bases!r}",
                )
            )
        for field in ("workspace_root", "images_dir"):
            value = getattr(self, field)
            if not (value.startswith("/") or value.startswith("{home}")):
                problems.append(((field,), "must be an absolute path or start with {home}"))
        if self.default_gpus < 0:
            problems.append((("default_gpus",), f"must be 0 or more, got {self.default_gpus}"))
        return problems
