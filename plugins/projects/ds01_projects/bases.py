"""Which images may be a build's base: the one rule behind ``allowed_bases``.

The gateway asks it for every build a user sends (the ``check_build`` hook, so a plain
``docker build`` cannot go around it) and ``ds01 image``/``ds01 project`` ask it before
writing a Dockerfile, so a refusal comes early and in the same words.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ds01_core.api import namespace_owner, normalize_username


def repository(ref: str) -> str:
    """``ref`` without its tag or digest, Docker Hub's implied prefixes dropped
    (``docker.io/library/ubuntu:22.04`` → ``ubuntu``)."""
    name = ref.strip().split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in (
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def base_allowed(
    ref: str,
    *,
    user: str,
    allowed_bases: str,
    catalogue_images: Iterable[str],
    extra_patterns: Iterable[str],
) -> bool:
    """Whether ``user`` may build from ``ref``: anything when ``allowed_bases`` is ``any``;
    otherwise any tag of a catalogue image, an image matching one of ``extra_patterns``, or the
    user's own image (``ds01/<user>/…``, itself built from an allowed base)."""
    if allowed_bases == "any":
        return True
    if namespace_owner(ref) == normalize_username(user):
        return True
    repo = repository(ref)
    if any(repo == repository(image) for image in catalogue_images):
        return True
    return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(repo, p) for p in extra_patterns)
