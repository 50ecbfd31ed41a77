"""The user pages' data: operations run as the visitor, each answer or its refusal kept apart
so one failing section shows its error in place while the rest of the page renders."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from ds01_core.api import ServiceError
from ds01_web.errors import WebError
from ds01_web.site import Visitor

log = logging.getLogger("ds01.web")


@attrs.frozen
class Answer:
    """An operation's result, or the sentence that says why there is none."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def fetch(visitor: Visitor, operation: str, **params: Any) -> Answer:
    """``operation`` as the visitor; a refusal or a failure is an :class:`Answer` with its
    words (a bug is logged in full and told in one line: never a traceback on a page)."""
    if not visitor.site.has_operation(operation):
        return Answer(error=f"{operation} is not installed on this server")
    try:
        return Answer(await visitor.call(operation, **params))
    except (ServiceError, WebError) as exc:
        return Answer(error=exc.message)
    except Exception as exc:
        log.exception("%s for %s failed", operation, visitor.caller.name)
        return Answer(
            error=f"ds01 could not read this ({type(exc).__name__}); it is logged: tell an admin"
        )


def slot_table(status: Any) -> dict[str, dict[str, Any]]:
    """Slot UUID -> the slot as ``gpu.status`` shows it (with its GPU's index and model)."""
    slots: dict[str, dict[str, Any]] = {}
    for gpu in (status or {}).get("gpus") or []:
        for slot in gpu.get("slots") or []:
            slots[slot["uuid"]] = {**slot, "gpu_model": gpu.get("model")}
    return slots


def free_now(status: Any) -> dict[str, Any]:
    """What is free now: whole GPUs (no MIG) and MIG slots per profile, from ``gpu.status``."""
    whole = 0
    profiles: dict[str, int] = {}
    for gpu in (status or {}).get("gpus") or []:
        for slot in gpu.get("slots") or []:
            if slot.get("allocation") is not None:
                continue
            if slot.get("kind") == "mig" and slot.get("profile"):
                profiles[slot["profile"]] = profiles.get(slot["profile"], 0) + 1
            else:
                whole += 1
    return {"gpus": whole, "profiles": dict(sorted(profiles.items()))}
