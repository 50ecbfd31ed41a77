"""The caller's own images (``ds01/<user>/…``) as the gateway shows them, with the containers
that use each, where each one's definition lives, and the image limits checked before a build.

Only images tagged in the caller's namespace count as theirs here; an image that lost its tag
to a rebuild but is still used by one of the caller's containers is listed as ``NAME (old)``,
so that ``ds01 image list`` explains why the disk is not free yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ds01_core.api import Conflict, ServiceError, Unavailable, format_bytes, utc_text
from ds01_projects.build import LABEL_BASE, LABEL_DEFINITION, LABEL_NAME, gateway_message
from ds01_projects.imagespec import load_spec
from ds01_projects.settings import Settings

if TYPE_CHECKING:
    import docker

#: what the gateway says when an image limit refuses (the same words before a build here)
REMOVE_HINT = "`ds01 image list`, then `ds01 image remove NAME` or `docker rmi IMAGE`"


@attrs.frozen
class ImageRow:
    """One of the caller's images, under one of its tags."""

    name: str
    tag: str
    ref: str
    id: str
    #: bytes
    size: int
    #: when it was built, UTC text
    created: str
    base: str | None
    #: names of the caller's containers made from it
    containers: tuple[str, ...]
    #: where its definition is (the build's label), None when unknown
    definition: str | None = None
    #: untagged by a rebuild but still used by a container
    old: bool = False

    def json(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"containers": list(self.containers)}


@contextmanager
def docker_call(action: str) -> Iterator[None]:
    """One gateway call: its refusals as :class:`ServiceError` in the gateway's own words,
    and a gateway that cannot be reached as :class:`Unavailable`; never a traceback."""
    # lazy: the docker SDK (with requests, ~50 ms) loads only when Docker is spoken to, not
    # for `ds01 --help`
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.APIError as exc:
        raise ServiceError(gateway_message(exc)) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise Unavailable(f"{action} through the ds01 gateway failed: {exc}") from None


def _created(value: Any) -> str:
    try:
        return utc_text(dt.datetime.fromtimestamp(int(value), dt.UTC))
    except (TypeError, ValueError, OverflowError):
        return ""


def _containers_by_image(api: docker.APIClient) -> dict[str, list[str]]:
    with docker_call("listing your containers"):
        summaries = api.containers(all=True)
    found: dict[str, list[str]] = {}
    for c in summaries:
        name = str((c.get("Names") or [c.get("Id", "")])[0]).lstrip("/")
        found.setdefault(str(c.get("ImageID") or ""), []).append(name)
    return {k: sorted(v) for k, v in found.items()}


def containers_using(api: docker.APIClient, image_id: str) -> list[str]:
    """Names of the caller's containers made from image ``image_id`` (the gateway shows a user
    their own containers only)."""
    return _containers_by_image(api).get(image_id, [])


def _split(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return (repo, tag) if repo and "/" not in tag else (ref, "latest")


def user_images(settings: Settings, api: docker.APIClient) -> list[ImageRow]:
    """The caller's images, one row per tag under ``ds01/<user>/``, plus old ones still used."""
    prefix = settings.namespace + "/"
    with docker_call("listing your images"):
        listing = api.images(all=False)
    using = _containers_by_image(api)
    rows: list[ImageRow] = []
    for image in listing:
        labels: Mapping[str, str] = image.get("Labels") or {}
        image_id = str(image.get("Id") or "")
        tags = [t for t in image.get("RepoTags") or [] if t.startswith(prefix)]
        common: dict[str, Any] = {
            "id": image_id,
            "size": int(image.get("Size") or 0),
            "created": _created(image.get("Created")),
            "base": labels.get(LABEL_BASE),
            "containers": tuple(using.get(image_id, ())),
            "definition": labels.get(LABEL_DEFINITION),
        }
        for ref in tags:
            repo, tag = _split(ref)
            rows.append(ImageRow(name=repo[len(prefix) :], tag=tag, ref=ref, **common))
        if not tags and using.get(image_id):
            name = labels.get(LABEL_NAME) or _created_as(api, using[image_id][0], prefix)
            if name:
                rows.append(ImageRow(name=name, tag="(old)", ref=image_id, old=True, **common))
    return sorted(
        (_with_definition(settings, r) for r in rows), key=lambda r: (r.name, r.old, r.tag)
    )


def _with_definition(settings: Settings, row: ImageRow) -> ImageRow:
    """Fill what the build's labels would say from ``images_dir/NAME`` when they are absent."""
    if row.definition and row.base:
        return row
    directory = Path(row.definition or Path(settings.images_dir) / row.name)
    try:
        spec = load_spec(directory)
    except ServiceError:
        return row
    return attrs.evolve(row, definition=str(directory), base=row.base or spec.base)


def _created_as(api: docker.APIClient, container: str, prefix: str) -> str | None:
    """The name of the image ``container`` was created from, when it is one of the caller's
    (for an old build without ds01's labels: a gateway that keeps ``ds01.*`` labels to itself)."""
    with docker_call("inspecting your container"):
        ref = str((api.inspect_container(container).get("Config") or {}).get("Image") or "")
    if not ref.startswith(prefix):
        return None
    return _split(ref)[0][len(prefix) :]


def find_image(rows: Iterable[ImageRow], name: str, tag: str | None = None) -> ImageRow | None:
    """The row of image ``name`` (``name:tag`` or ``tag``; ``latest`` first), not an old one."""
    if ":" in name and tag is None:
        name, tag = name.split(":", 1)
    matches = [r for r in rows if r.name == name and not r.old and (tag is None or r.tag == tag)]
    matches.sort(key=lambda r: r.tag != "latest")
    return matches[0] if matches else None


def definition_dir(settings: Settings, name: str, row: ImageRow | None) -> Path:
    """Where image ``name``'s definition lives: its build's label, else ``images_dir/NAME``."""
    if row is not None and row.definition:
        return Path(row.definition)
    return Path(settings.images_dir) / name


def check_image_limits(settings: Settings, rows: list[ImageRow], ref: str) -> str | None:
    """Refuse early, in the gateway's words, a build the gateway would refuse; otherwise a
    line saying where the caller stands against their limits (None when they have none)."""
    max_images = settings.limits.get("max_images")
    max_storage = settings.limits.get("max_image_storage")
    if max_images is None and max_storage is None:
        return None
    sizes = {r.id: r.size for r in rows}
    total = sum(sizes.values())
    tagged = {r.id for r in rows if not r.old}
    if max_storage is not None and total >= int(max_storage):
        raise Conflict(
            f"your images take {format_bytes(total)}, your image storage limit "
            f"(max_image_storage) is {format_bytes(int(max_storage))}: remove some first "
            f"({REMOVE_HINT})"
        )
    replaces = any(r.ref == ref for r in rows)
    if max_images is not None and len(tagged) >= int(max_images) and not replaces:
        raise Conflict(
            f"you have {len(tagged)} images and may have {max_images} (max_images): rebuild one "
            f"of yours under its own name, or remove one first ({REMOVE_HINT})"
        )
    parts = []
    if max_images is not None:
        parts.append(f"{len(tagged)} of {max_images} images")
    if max_storage is not None:
        parts.append(f"{format_bytes(total)} of {format_bytes(int(max_storage))}")
    return "your images: " + ", ".join(parts)
