"""The container creation wizard (``/containers/new``): name and project, image (the admin's
catalogue or the user's own), GPU request (none, N GPUs, a MIG profile, a full GPU) with what
is free now and what the quota allows, then a review; creating goes through
``containers.create`` as the visitor, and a refusal comes back into the form with what to do."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ds01_core.api import ServiceError
from ds01_web.dashboard import words
from ds01_web.dashboard.data import fetch, free_now
from ds01_web.site import NO_STORE, Visitor, action, page, render

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
MODES = ("none", "gpus", "mig", "full")
FIELDS = ("name", "project", "image", "image_other", "gpu_mode", "gpus", "mig", "start")


def values_of(form: FormData | None) -> dict[str, str]:
    """The wizard's fields from a form (missing ones empty; ``start`` on by default)."""
    if form is None:
        return {f: "" for f in FIELDS} | {"gpu_mode": "none", "gpus": "1", "start": "on"}
    return {f: str(form.get(f) or "").strip() for f in FIELDS}


def check(values: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """``(errors by field, containers.create's parameters)`` for the wizard's ``values``."""
    errors: dict[str, str] = {}
    params: dict[str, Any] = {}
    if not NAME.match(values["name"]):
        errors["name"] = (
            "give the container a name: letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, at most 63 characters"
        )
    params["name"] = values["name"]
    if values["project"]:
        if not NAME.match(values["project"]):
            errors["project"] = "a project name uses letters, digits, '.', '_' or '-'"
        params["project"] = values["project"]
    image = values["image_other"] if values["image"] == "other" else values["image"]
    if not image:
        errors["image"] = "choose an image, or type the name of another one"
    params["image"] = image
    mode = values["gpu_mode"] if values["gpu_mode"] in MODES else ""
    if not mode:
        errors["gpu_mode"] = "choose what GPU the container gets (none is fine)"
    elif mode == "none":
        params["cpu_only"] = True
    elif mode == "gpus":
        if not values["gpus"].isdigit() or int(values["gpus"]) < 1:
            errors["gpus"] = "the number of GPUs is a whole number, at least 1"
        else:
            params["gpus"] = int(values["gpus"])
    elif mode == "mig":
        if not values["mig"]:
            errors["mig"] = "choose a MIG profile"
        params["mig"] = values["mig"]
    else:
        params["full_gpu"] = True
    return errors, params


def describe(params: dict[str, Any]) -> str:
    """The GPU request in words, for the review."""
    if params.get("cpu_only"):
        return "no GPU (CPU only)"
    if params.get("mig"):
        return f"one MIG slot of profile {params['mig']}"
    if params.get("full_gpu"):
        return "a full GPU (not shared by MIG)"
    count = params.get("gpus", 1)
    return f"{count} GPU{'s' if count != 1 else ''}"


def what_to_do(message: str) -> list[str]:
    """Hints under a refusal, by what it was about."""
    text = message.lower()
    hints = []
    if "quota" in text or "gpu-equivalent" in text:
        hints.append(
            "Stop or remove a container that holds a GPU (its GPU is then released), or ask for less."
        )
    if "free" in text or "available" in text or "queue" in text or "no slot" in text:
        hints.append(
            "Choose a smaller MIG profile or no GPU, try again later, or queue for one from a "
            "terminal: ds01 container create NAME --image IMAGE --gpus 1 --wait 2h"
        )
    if "already" in text or "in use" in text or "exists" in text:
        hints.append("Choose another name, or remove the old container from your dashboard.")
    if "image" in text:
        hints.append("Choose an image from the list: yours are built with ds01 image create.")
    return hints


async def _options(visitor: Visitor) -> dict[str, Any]:
    """The wizard's choices: catalogue, own images, what is free now, the quota."""
    settings = await fetch(visitor, "projects.settings")
    images = await fetch(visitor, "projects.images")
    status = await fetch(visitor, "gpu.status")
    quota = await fetch(visitor, "quota")
    catalogue = [
        {"ref": e["ref"], "label": e["key"], "description": e.get("description") or ""}
        for e in (settings.value or {}).get("catalogue") or []
    ]
    own = [
        {
            "ref": i["ref"],
            "label": i["ref"],
            "description": f"{words.size(i['size'])}, built {words.clock(i['created'])}",
        }
        for i in images.value or []
    ]
    free = free_now(status.value) if status.ok else None
    limits = (quota.value or {}).get("limits") or {}
    gpu = (quota.value or {}).get("gpu_equivalents") or {}
    per_container = limits.get("max_gpu_slots_per_container")
    left = gpu.get("left")
    most = per_container if per_container is not None else 8
    if isinstance(left, (int, float)):
        most = min(most, int(left + 1e-9))
    return {
        "catalogue": catalogue,
        "own": own,
        "images_error": None
        if images.ok or not visitor.site.has_operation("projects.images")
        else images.error,
        "free": free,
        "gpu_error": status.error,
        "quota_error": quota.error,
        "left": None if left is None else words.number(left),
        "limit": None if gpu.get("limit") is None else words.number(gpu["limit"]),
        "max_gpus": max(most, 1),
        "allow_full_gpu": limits.get("allow_full_gpu", True) is not False,
        "profiles": sorted((free or {}).get("profiles", {}).keys()),
    }


async def _form(
    request: Request,
    visitor: Visitor,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "user/wizard.html",
        visitor,
        status,
        title="New container",
        values=values,
        errors=errors or {},
        refusal=refusal,
        hints=what_to_do(refusal) if refusal else [],
        **await _options(visitor),
    )


@page
async def new(request: Request, visitor: Visitor) -> Response:
    return await _form(request, visitor, values_of(None))


@action()
async def submit(request: Request, visitor: Visitor, form: FormData) -> Response:
    values = values_of(form)
    step = str(form.get("step") or "review")
    if step == "edit":
        return await _form(request, visitor, values)
    errors, params = check(values)
    if errors:
        return await _form(request, visitor, values, errors, status=400)
    if step != "create":
        return render(
            request,
            "user/review.html",
            visitor,
            title="Review the new container",
            values=values,
            params=params,
            gpu_words=describe(params),
        )
    try:
        await visitor.call("containers.create", **params)
    except ServiceError as exc:
        return await _form(request, visitor, values, refusal=exc.message, status=exc.status)
    done = "created"
    if values["start"]:
        try:
            await visitor.call("containers.start", name=params["name"])
            done = "started"
        except ServiceError as exc:
            return await _form(
                request,
                visitor,
                values,
                refusal=f"container {params['name']} was created but did not start: {exc.message}",
                status=exc.status,
            )
    return RedirectResponse(f"/?done={done}&c={params['name']}", 303, headers=NO_STORE)


ROUTES: list[BaseRoute] = [
    Route("/containers/new", new, methods=["GET"]),
    Route("/containers/new", submit, methods=["POST"]),
]
