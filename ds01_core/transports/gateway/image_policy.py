"""Whose images a user may name, see and add to through the gateway, and the image limits.

The rule is :mod:`ds01_core.domain.images`: ``ds01/<user>/…`` is that user's namespace, and an
image is its ``ds01.owner`` label's (else its namespace's) user, or shared. Another user's image
is answered as the engine answers for no image at all (``No such image``), so its name is not
disclosed; a name in another's namespace is refused. ``max_images`` and ``max_image_storage``
are counted from the engine's listing before anything that adds an image to the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ds01_core.domain.images import (
    image_owner,
    namespace_owner,
    normalize_reference,
    real_tags,
    user_repository,
)
from ds01_core.domain.units import format_bytes
from ds01_core.domain.user_limits import effective_limits
from ds01_core.domain.users import normalize_username
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.http import HttpError

_REMOVE = "`ds01 image list`, then `ds01 image remove NAME` or `docker rmi IMAGE`"


def no_such_image(ref: str, *, hidden: bool) -> HttpError:
    """The engine's own 404 for ``ref``: a refusal when the image exists but is another's
    (counted and logged), a plain answer when there is none; the client cannot tell them apart."""
    message = f"No such image: {ref}"
    if hidden:
        return Refused(message, 404, as_engine=True)
    error = HttpError(404, message)
    error.as_engine = True
    return error


def me(call: Call) -> str:
    """The caller's name as image owners are compared."""
    return normalize_username(call.user)


def check_name(call: Call, ref: str, what: str) -> None:
    """Refuse ``ref`` when it names another user's namespace (``what``: what was asked)."""
    owner = namespace_owner(ref)
    if owner is not None and owner != me(call):
        raise Refused(
            f"{what} {ref}: {owner}'s namespace (ds01/{owner}/) belongs to another user; "
            f"name your images {user_repository(call.user, 'NAME')}"
        )


def visible(call: Call, image: Mapping[str, Any]) -> bool:
    """Whether the caller may see this image (an inspect or a listing row): theirs, or shared
    and named. An image without owner, tag or digest is a step of someone's build (the build's
    ``ds01.owner`` label is on its last image only) or an old one left behind: admins' only."""
    owner = image_owner(image)
    if owner is not None:
        return owner == me(call)
    digests = image.get("RepoDigests")
    named = isinstance(digests, list) and any("<none>" not in str(d) for d in digests)
    return named or bool(real_tags(image))


def inspect_image(call: Call, ref: str) -> dict[str, Any] | None:
    status, body = call.engine.call("GET", f"/images/{quote(ref, safe='')}/json")
    return body if status == 200 and isinstance(body, dict) else None


def visible_image(call: Call, ref: str) -> dict[str, Any]:
    """The image ``ref`` names when the caller may see it; the engine's 404 otherwise."""
    if (owner := namespace_owner(ref)) is not None and owner != me(call):
        raise no_such_image(ref, hidden=True)
    image = inspect_image(call, ref)
    if image is None:
        raise no_such_image(ref, hidden=False)
    if not visible(call, image):
        raise no_such_image(ref, hidden=True)
    return image


def usable_image(call: Call, ref: str) -> bool:
    """For a container create: not another user's image (a missing one is the engine's
    business: it answers 404 and the client may pull)."""
    if (owner := namespace_owner(ref)) is not None and owner != me(call):
        return False
    image = inspect_image(call, ref)
    return image is None or visible(call, image)


def owned_images(call: Call) -> list[dict[str, Any]]:
    """The caller's images, as the engine lists them (untagged ones included)."""
    status, listing = call.engine.call("GET", "/images/json")
    if status != 200 or not isinstance(listing, list):
        raise HttpError(502, "the engine's image list could not be read to count your images")
    return [row for row in listing if isinstance(row, dict) and image_owner(row) == me(call)]


def check_limits(call: Call, tags: Iterable[str], image_id: str | None = None) -> None:
    """Refuse adding an image (or ``tags``, or tagging ``image_id``) to the caller's when
    they are at ``max_image_storage``, or at ``max_images`` with nothing of theirs replaced."""
    limits = call.gateway.in_runtime(effective_limits, call.user)
    max_images, max_storage = limits.get("max_images"), limits.get("max_image_storage")
    if max_images is None and max_storage is None:
        return
    owned = owned_images(call)
    total = sum(int(row.get("Size") or 0) for row in owned)
    if max_storage is not None and total >= max_storage:
        raise Refused(
            f"your images take {format_bytes(total)}, your image storage limit "
            f"(max_image_storage) is {format_bytes(int(max_storage))}: remove some first "
            f"({_REMOVE})"
        )
    new = [normalize_reference(t) for t in tags]
    if max_images is None or not new:
        return
    tagged = [row for row in owned if real_tags(row)]
    if len(tagged) < max_images:
        return
    theirs = {t for row in tagged for t in real_tags(row)}
    if any(t in theirs for t in new) or any(row.get("Id") == image_id for row in tagged):
        return  # replaces (or re-tags) one of theirs: the count does not grow
    raise Refused(
        f"you have {len(tagged)} images and may have {max_images} (max_images): rebuild one "
        f"of yours under its own name, or remove one first ({_REMOVE})"
    )
