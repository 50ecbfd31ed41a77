"""``/tokens``: the visitor's personal API tokens — made (the text shown once), listed, revoked.

The same operations as ``ds01 token`` (``web.token_create``/``_list``/``_revoke``), as the
signed-in user; a token itself can never make one (the REST route is refused), a signed-in
browser may. A new token's text is shown in the answer to the POST only, never stored or
shown again.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ds01_core.api import ServiceError
from ds01_web.site import NO_STORE, Visitor, action, page, render

LIFETIMES = (("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"))


async def _page(request: Request, visitor: Visitor, status: int = 200, **extra: Any) -> Response:
    tokens = await visitor.call("web.token_list")
    context: dict[str, Any] = {
        "tokens": sorted(tokens, key=lambda t: str(t.get("created")), reverse=True),
        "lifetimes": LIFETIMES,
        "made": None,
        "problem": None,
        "revoked": None,
        "values": {"name": "", "scope": "read", "expires": "30d"},
    }
    context.update(extra)
    return render(request, "user/tokens.html", visitor, status, title="API tokens", **context)


@page
async def tokens(request: Request, visitor: Visitor) -> Response:
    return await _page(request, visitor, revoked=request.query_params.get("revoked"))


@action()
async def create(request: Request, visitor: Visitor, form: FormData) -> Response:
    values = {
        "name": str(form.get("name") or "").strip(),
        "scope": "write" if form.get("scope") == "write" else "read",
        "expires": str(form.get("expires") or "30d"),
    }
    scopes = ["read", "write"] if values["scope"] == "write" else ["read"]
    try:
        made = await visitor.call(
            "web.token_create", name=values["name"], expires=values["expires"], scope=scopes
        )
    except ServiceError as exc:
        return await _page(request, visitor, exc.status, problem=exc.message, values=values)
    return await _page(request, visitor, made=made)


@action()
async def revoke(request: Request, visitor: Visitor, form: FormData) -> Response:
    token_id = request.path_params["id"]
    await visitor.call("web.token_revoke", id=token_id)
    return RedirectResponse(f"/tokens?revoked={token_id}", 303, headers=NO_STORE)


ROUTES: list[BaseRoute] = [
    Route("/tokens", tokens, methods=["GET"]),
    Route("/tokens", create, methods=["POST"]),
    Route("/tokens/{id}/revoke", revoke, methods=["POST"]),
]
