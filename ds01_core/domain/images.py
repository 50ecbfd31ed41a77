"""Whose an image is: the per-user namespace ``ds01/<user>/<name>`` and the owner label.

A user's images are named ``ds01/<user>/<name>:<tag>`` on the local engine (Docker Hub's
spelling: ``docker.io/ds01/<user>/...`` is the same name; ``localhost:5000/ds01/...`` is another
registry's and nobody's here). An image built, committed or imported through the gateway also
carries the label ``ds01.owner=<user>``, which says whose it is whatever it is tagged as. Pure
functions over names and the engine's image JSON, so the gateway, ``ds01 image`` and the tests
agree on one rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ds01_core.domain.users import normalize_username

NAMESPACE = "ds01"
#: the label the gateway puts on images a user builds, commits or imports (not ``ds01.user``:
#: an image's labels become its containers', and that one names a container's owner)
IMAGE_OWNER_LABEL = "ds01.owner"
_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
_NO_TAG = "<none>"

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
#: Docker's reference grammar (distribution/reference), or an image id (full or a prefix)
_REFERENCE = re.compile(
    rf"(?:sha256:[0-9a-f]{{64}}|[0-9a-f]{{6,64}}"
    rf"|(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    rf"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?)"
)


def is_image_reference(ref: str) -> bool:
    """Is ``ref`` an image name or id as Docker spells them? Anything else (``..``, ``?``,
    ``%``, a space) could steer a ``/images/{ref}/json`` request to another endpoint of the
    engine's API, so it is never sent: it names no image."""
    return len(ref) <= 512 and _REFERENCE.fullmatch(ref) is not None


def user_repository(user: str, name: str) -> str:
    """The repository of ``user``'s image ``name``: ``ds01/<user>/<name>`` (no tag)."""
    return f"{NAMESPACE}/{normalize_username(user)}/{name}"


def repository_of(ref: str) -> str | None:
    """The repository of a reference (``repo[:tag][@digest]``) on Docker Hub's spelling
    (``docker.io/`` and ``library/`` dropped); None for a bare id (``sha256:…``) or a name
    on another registry (``localhost:5000/x``, ``ghcr.io/x``)."""
    ref = ref.strip()
    if not ref or ref.startswith("sha256:"):
        return None
    repo = ref.split("@", 1)[0]
    head, slash, rest = repo.rpartition("/")
    if ":" in rest:
        rest = rest.split(":", 1)[0]
    repo = f"{head}{slash}{rest}"
    lowered = repo.lower()
    for prefix in _HUB_PREFIXES:
        if lowered.startswith(prefix):
            repo = repo[len(prefix) :]
            break
    else:
        first, sep, _ = repo.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return None  # another registry's name
    return repo.removeprefix("library/") or None


def normalize_reference(ref: str) -> str:
    """A reference as the engine lists it in ``RepoTags`` (``x`` → ``x:latest``,
    ``docker.io/ds01/u/x:1`` → ``ds01/u/x:1``); another registry's is kept as given."""
    repo = repository_of(ref)
    if repo is None:
        return ref.strip()
    base = ref.strip().split("@", 1)[0]
    last = base.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return f"{repo}:{tag}"


def namespace_owner(ref: str) -> str | None:
    """The user whose namespace ``ref`` (``repo[:tag][@digest]``) is in, normalised; None
    for any other name (``pytorch/pytorch:2``, another registry's, an image id)."""
    repo = repository_of(ref)
    if repo is None:
        return None
    parts = repo.split("/")
    if len(parts) < 2 or parts[0].lower() != NAMESPACE or not parts[1]:
        return None
    return normalize_username(parts[1])


def tags_owner(tags: Iterable[str]) -> str | None:
    """The one user whose namespace every tag is in; None when a tag is outside ``ds01/`` or
    they name different users. (A shared image someone also tagged into their namespace stays
    shared: a tag must not take an image everyone uses away from the others.)"""
    owners = {namespace_owner(t) for t in tags if t and _NO_TAG not in t}
    return owners.pop() if len(owners) == 1 else None


def image_labels(image: Mapping[str, Any]) -> Mapping[str, Any]:
    """An image's labels from an inspect (``Config.Labels``) or a listing row (``Labels``)."""
    config = image.get("Config")
    labels = config.get("Labels") if isinstance(config, Mapping) else None
    if not isinstance(labels, Mapping):
        labels = image.get("Labels")
    return labels if isinstance(labels, Mapping) else {}


def image_owner(image: Mapping[str, Any]) -> str | None:
    """Whose image this is (an inspect or a listing row): its ``ds01.owner`` label, else the
    user whose namespace all its tags are in; None for a shared image."""
    label = image_labels(image).get(IMAGE_OWNER_LABEL)
    if isinstance(label, str) and label.strip():
        return normalize_username(label)
    tags = image.get("RepoTags")
    if not isinstance(tags, list):
        return None
    return tags_owner(str(t) for t in tags)


def real_tags(image: Mapping[str, Any]) -> list[str]:
    """An image's tags, without the ``<none>:<none>`` of an untagged one."""
    tags = image.get("RepoTags")
    return (
        [str(t) for t in tags or [] if t and _NO_TAG not in str(t)]
        if isinstance(tags, list)
        else []
    )
