"""The ``projects.images`` operation: the caller's own images, as the server's engine has them.

``ds01 image list`` asks the engine through the gateway, in the user's own process; a web page
runs on the server and has no such process, so it asks this operation, which reads the engine
as root and keeps the caller's images only (``ds01.owner`` label, or every tag in
``ds01/<user>/``), the same rule the gateway and ``ds01 quota`` use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ds01_core.api import Operation, ServiceContext, Unavailable, image_owner, utc_text


def _created(value: Any) -> str | None:
    try:
        return utc_text(dt.datetime.fromtimestamp(int(value), dt.UTC))
    except (TypeError, ValueError, OverflowError):
        return None


def own_images(ctx: ServiceContext) -> list[dict[str, Any]]:
    """One row per tag of each of the caller's images: ``ref``, ``id``, ``size`` (bytes) and
    ``created``, sorted by ``ref``."""
    user = ctx.caller.name
    try:
        listing = ctx.runtime.docker.api.images(all=False)
    except Exception as exc:  # the engine unreachable or refusing: one line, no traceback
        raise Unavailable(f"cannot list images: Docker: {exc}") from None
    rows = []
    for image in listing:
        if image_owner(image) != user:
            continue
        for ref in image.get("RepoTags") or []:
            if ref and ref != "<none>:<none>":
                rows.append(
                    {
                        "ref": str(ref),
                        "id": str(image.get("Id") or ""),
                        "size": int(image.get("Size") or 0),
                        "created": _created(image.get("Created")),
                    }
                )
    return sorted(rows, key=lambda row: row["ref"])


OPERATIONS = (
    Operation(
        "projects.images",
        "GET",
        "/v1/projects/images",
        own_images,
        (),
        summary="Your own images (tags under ds01/<you>/ or labelled yours) on this server.",
    ),
)
