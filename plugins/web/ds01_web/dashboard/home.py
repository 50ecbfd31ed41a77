"""The user dashboard (``GET /``), its polled sections (``GET /dashboard/<section>``) and the
container buttons: start, stop, and remove after a confirmation step (no script needed)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ds01_core.api import ServiceError
from ds01_web.dashboard.sections import POLL, SECTIONS
from ds01_web.errors import WebError
from ds01_web.site import NO_STORE, Visitor, action, page, render

#: what a finished action says (``?done=<key>&c=<container>`` after a plain form's redirect)
DONE = {
    "created": "Container {c} was created.",
    "started": "Container {c} started.",
    "stopped": "Container {c} stopped.",
    "removed": "Container {c} was removed.",
}


async def _all_sections(visitor: Visitor) -> dict[str, Any]:
    return {name: await build(visitor) for name, build in SECTIONS.items()}


@page
async def dashboard(request: Request, visitor: Visitor) -> Response:
    done = request.query_params.get("done", "")
    notice = DONE[done].format(c=request.query_params.get("c", "")) if done in DONE else None
    return render(
        request,
        "user/dashboard.html",
        visitor,
        title="Dashboard",
        notice=notice,
        poll=POLL,
        **await _all_sections(visitor),
    )


@page
async def section(request: Request, visitor: Visitor) -> Response:
    name = request.path_params["section"]
    build = SECTIONS.get(name)
    if build is None:
        raise WebError("not_found", f"the dashboard has no section {name!r}: reload the page")
    context: dict[str, Any] = {name: await build(visitor), "poll": POLL}
    return render(request, f"user/_{name}.html", visitor, **context)


async def _after(
    request: Request, visitor: Visitor, name: str, done: str, error: ServiceError | None
) -> Response:
    """An action's answer: for htmx the refreshed cards with what happened; for a plain form a
    redirect to the dashboard (or, refused, the dashboard with the refusal, its status kept)."""
    if request.headers.get("HX-Request"):
        message = error.message if error else DONE[done].format(c=name)
        cards = await SECTIONS["containers"](visitor)
        return render(
            request,
            "user/_containers.html",
            visitor,
            error.status if error else 200,  # htmx swaps refusals too (base.html)
            poll=POLL,
            containers=cards,
            flash={"text": message, "error": error is not None},
        )
    if error is not None:
        return render(
            request,
            "user/dashboard.html",
            visitor,
            error.status,
            title="Dashboard",
            notice=None,
            refusal=error.message,
            poll=POLL,
            **await _all_sections(visitor),
        )
    return RedirectResponse(f"/?done={done}&c={name}", 303, headers=NO_STORE)


def _button(operation: str, done: str, **params: Any) -> Any:
    @action()
    async def handler(request: Request, visitor: Visitor, form: FormData) -> Response:
        name = request.path_params["name"]
        try:
            await visitor.call(operation, name=name, **params)
        except ServiceError as exc:
            return await _after(request, visitor, name, done, exc)
        return await _after(request, visitor, name, done, None)

    handler.__name__ = done
    return handler


@page
async def confirm_remove(request: Request, visitor: Visitor) -> Response:
    name = request.path_params["name"]
    listed = await visitor.call("containers.list", all=True)
    found = next((c for c in listed if c["name"] == name), None)
    if found is None:
        raise WebError("not_found", f"you have no container {name}: see your dashboard")
    return render(
        request,
        "user/remove.html",
        visitor,
        title=f"Remove {name}",
        name=name,
        running=found.get("status") == "running",
        gpus=found.get("gpu_slot_ids") or [],
    )


ROUTES: list[BaseRoute] = [
    Route("/", dashboard, methods=["GET"]),
    Route("/dashboard/{section}", section, methods=["GET"]),
    Route("/containers/{name}/start", _button("containers.start", "started"), methods=["POST"]),
    Route("/containers/{name}/stop", _button("containers.stop", "stopped"), methods=["POST"]),
    Route("/containers/{name}/remove", confirm_remove, methods=["GET"]),
    Route(
        "/containers/{name}/remove",
        _button("containers.remove", "removed", force=True),
        methods=["POST"],
    ),
]
