"""The gateway's policy for endpoints that are not one user's object.

Endpoints open to all, admin-only ones, the events stream (filtered to the caller's objects)
and BuildKit (not available)."""

from __future__ import annotations

import json

from ds01_core.domain.images import IMAGE_OWNER_LABEL, namespace_owner
from ds01_core.domain.users import normalize_username
from ds01_core.transports.gateway.call import Call, Refused
from ds01_core.transports.gateway.ownership import BUILTIN_NETWORKS


def open_endpoint(call: Call) -> bool:
    """Nothing of anyone's in particular (ping, version, info, auth, image search)."""
    return call.forward()


def admin_only(call: Call) -> bool:
    raise Refused(
        f"{call.head.method} {call.route.path} is for admins only (it acts on everyone's objects)"
    )


def buildkit(call: Call) -> bool:
    raise Refused(
        "BuildKit sessions are not available through the ds01 gateway; build with the "
        "classic builder: DOCKER_BUILDKIT=0 docker build ..."
    )


def events(call: Call) -> bool:
    call.no_body()
    return call.forward(lines=lambda line: _event_visible(call, line))


def _event_visible(call: Call, line: bytes) -> bool:
    """Whether the caller may see this event: images not another user's; containers, volumes
    and networks only their owner's (a built-in network's: for the caller's containers)."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    kind = event.get("Type")
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    owners, user = call.owners, call.user
    if kind == "image":  # another user's image events would name it
        owner = attributes.get(IMAGE_OWNER_LABEL) or namespace_owner(
            str(attributes.get("name") or "")
        )
        return not owner or normalize_username(str(owner)) == normalize_username(user)
    if kind == "container":
        return owners.of_container_id(str(actor.get("ID", "")), attributes) == user
    if kind in ("volume", "network"):
        name = str(attributes.get("name") or actor.get("ID") or "")
        if kind == "network" and name in BUILTIN_NETWORKS:
            container = attributes.get("container")
            return bool(container) and owners.of_container_id(str(container)) == user
        found = call.engine.inspect(f"{kind}s", str(actor.get("ID") or name))
        return found is not None and owners.of_labelled(found) == user
    return False
