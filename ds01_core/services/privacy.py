"""What a caller may see of other users' work (``privacy`` in the configuration).

Admins see everything. Others see their own workloads whole; of other users' they see that the
work exists and which GPU it holds (as ``nvidia-smi`` shows processes), with the owner only if
``privacy.show_other_owners`` and the container's name, image, command and id only if
``privacy.show_other_container_names``.
"""

from __future__ import annotations

from typing import Any

from ds01_core.services.operations import ServiceContext

HIDDEN = "(hidden)"
OTHER_USER = "(another user)"


def shows_owner(ctx: ServiceContext, owner: str | None) -> bool:
    return (
        ctx.caller.admin or owner == ctx.caller.name or ctx.runtime.config.privacy.show_other_owners
    )


def shows_names(ctx: ServiceContext, owner: str | None) -> bool:
    return (
        ctx.caller.admin
        or owner == ctx.caller.name
        or ctx.runtime.config.privacy.show_other_container_names
    )


def workload_view(ctx: ServiceContext, data: dict[str, Any]) -> dict[str, Any]:
    """One workload's JSON form as the caller may see it."""
    owner = data.get("owner")
    view = dict(data)
    if not shows_owner(ctx, owner):
        view["owner"] = OTHER_USER
        view["owner_source"] = None
    if not shows_names(ctx, owner):
        view.update(name=HIDDEN, id="", image=None, cmdline=None, pids=[], last_active_signal=None)
    return view


def allocation_view(ctx: ServiceContext, data: dict[str, Any] | None) -> dict[str, Any] | None:
    """A GPU slot's holder (``ds01 gpu status``) as the caller may see it."""
    if data is None:
        return None
    owner = data.get("user")
    view = dict(data)
    if not shows_owner(ctx, owner):
        view["user"] = OTHER_USER
    if not shows_names(ctx, owner):
        view.update(container=HIDDEN, container_id=None)
    return view
