"""The REST API as an ASGI app: every operation of the process under ``/api/v1``, run as the
owner of the request's personal token.

``/v1/x`` of an operation is ``/api/v1/x`` here, with the method and parameters the API socket
takes (the query for GET, a JSON object body for POST and DELETE, path parameters); results are
JSON, streams are raw bytes or NDJSON, and errors ``{"error": {"kind", "message", "code"}}``
with the socket's HTTP statuses. Operations run on a thread pool, each thread with its own
state store connection (a :class:`ThreadedRuntime`). Refusals are ``access.denied`` events;
every state-changing call (not GET) is a ``web.request`` event with the user and the source
address.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ds01_core.api import (
    Event,
    Forbidden,
    Invalid,
    NotFound,
    Operation,
    Runtime,
    ServiceContext,
    ServiceError,
    invoke_operation,
    operation_table,
    parameters_from_json,
    to_json,
)
from ds01_web.config import WebConfig
from ds01_web.errors import WebError, error_body, from_service
from ds01_web.guard import Denied, Identity, RateLimiter, authenticate
from ds01_web.token_ops import VIA_TOKEN

log = logging.getLogger("ds01.web")

PREFIX = "/api"
MAX_BODY = 1024 * 1024
METHODS = ("GET", "POST", "DELETE")
#: operations a token may never call, whatever its scope: only a logged-in user makes tokens
SESSION_ONLY = frozenset({"web.token_create"})


def settings_of(runtime: Runtime) -> WebConfig:
    found = runtime.plugin_config("web")
    return found if isinstance(found, WebConfig) else WebConfig()


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(data).encode(), status, headers, media_type="application/json")


def _error(error: WebError) -> Response:
    return _json(error.status, error_body(error.kind, error.message), error.headers)


class WebApi:
    """The app's state: the runtime, the rate limiter and the thread pool's limit."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = settings_of(runtime)
        self.limiter = RateLimiter(self.settings.rate_limit)
        self.refusals = RateLimiter(self.settings.rate_limit)
        self.threads = anyio.CapacityLimiter(self.settings.threads)

    def event(self, event_type: str, user: str | None, details: dict[str, Any]) -> None:
        try:
            self.runtime.events.append(Event(event_type, user, "web", details))
        except OSError:
            log.exception("could not write %s to the event log", event_type)

    # -- one request ----------------------------------------------------------------------------

    async def serve(self, request: Request) -> Response:
        method = request.method
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        endpoint = f"{method} {path}"
        address = request.client.host if request.client else "?"
        identity: Identity | None = None
        try:
            identity = await self._run(
                authenticate, self.runtime, request.headers.get("authorization")
            )
            self.limiter.admit(identity.caller.name)
            if method not in METHODS:
                raise WebError(
                    "method_not_allowed", f"{method} is not served: use GET, POST or DELETE"
                )
            body = await self._body(request) if method != "GET" else {}
            op, params = self._route(method, path, request.url.query, body, identity)
            result = await self._run(self._invoke, op, params, identity)
        except Denied as exc:
            try:  # refusals are counted per address too: a flood is not logged line by line
                self.refusals.admit(f"address {address}")
            except WebError as flood:
                return _error(flood)
            self.event(
                "access.denied",
                exc.why.owner,
                {
                    "endpoint": endpoint,
                    "address": address,
                    "reason": f"token refused: {exc.why.reason}",
                    "token": exc.why.token_id,
                },
            )
            return _error(exc)
        except (WebError, ServiceError) as exc:
            error = exc if isinstance(exc, WebError) else from_service(exc)
            if error.status == 403 and identity is not None:
                self.event(
                    "access.denied",
                    identity.caller.name,
                    {"endpoint": endpoint, "address": address, "reason": error.message},
                )
            self._audit(method, identity, endpoint, address, error.status)
            return _error(error)
        except Exception as exc:  # a bug: logged in full, the caller told in one line
            log.exception("%s failed", endpoint)
            self._audit(method, identity, endpoint, address, 500)
            return _error(
                WebError(
                    "internal",
                    f"internal error in ds01-web ({type(exc).__name__}); it is logged: tell an admin",
                )
            )
        self._audit(method, identity, endpoint, address, 200)
        if op.stream:
            kind = "application/octet-stream" if op.stream == "bytes" else "application/x-ndjson"
            return StreamingResponse(_chunks(op, result), media_type=kind)
        return _json(200, result)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.threads)

    def _route(
        self, method: str, path: str, query: str, body: dict[str, Any], identity: Identity
    ) -> tuple[Operation, dict[str, Any]]:
        found = operation_table(self.runtime).route(method, path.removeprefix(PREFIX))
        if not path.startswith(PREFIX + "/") or found is None:
            raise NotFound(f"no API endpoint {method} {path} (see /api/v1/openapi.json)")
        op, path_params = found
        if op.name in SESSION_ONLY:
            raise Forbidden(
                f"{op.name} cannot be called with a token: run `ds01 token create` logged in "
                "on the server"
            )
        if method != "GET" and not identity.can_write:
            raise WebError(
                "insufficient_scope",
                f"this token (id {identity.token.id}) has the read scope: it may only GET; "
                f"{method} needs a token made with `ds01 token create --scope write`",
            )
        params: dict[str, Any] = dict(parse_qs(query, keep_blank_values=True))
        params.update(body)
        params.update(path_params)
        return op, params

    def _invoke(self, op: Operation, params: dict[str, Any], identity: Identity) -> Any:
        VIA_TOKEN.set(True)
        return invoke_operation(ServiceContext(self.runtime, identity.caller), op, params)

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Invalid(f"request body over {MAX_BODY} bytes")
        return parameters_from_json(raw)

    def _audit(
        self, method: str, identity: Identity | None, endpoint: str, address: str, status: int
    ) -> None:
        if method == "GET" or identity is None:
            return
        self.event(
            "web.request",
            identity.caller.name,
            {
                "endpoint": endpoint,
                "address": address,
                "status": status,
                "token": identity.token.id,
            },
        )


def _chunks(op: Operation, items: Iterable[Any]) -> Iterator[bytes]:
    """A stream's items as bytes: raw, or JSON Lines (an empty line is a heartbeat); the
    operation's iterator is closed when the caller goes away."""
    iterator = iter(items)
    try:
        for item in iterator:
            if op.stream == "bytes":
                yield bytes(item)
            else:
                yield b"\n" if item is None else to_json(item).encode() + b"\n"
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def create_app(runtime: Runtime) -> Starlette:
    """The REST API for ``runtime`` (best a ``ThreadedRuntime``: operations run on threads)."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from ds01_web import admin, dashboard, login
    from ds01_web.openapi import openapi_document
    from ds01_web.pages import STATIC, STATIC_URL
    from ds01_web.site import Site

    api = WebApi(runtime)
    site = Site(runtime, api.settings, api.limiter, api.threads)

    async def openapi(request: Request) -> Response:
        return _json(200, openapi_document(runtime))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "internal")
        if not request.url.path.startswith(PREFIX + "/"):
            from ds01_web.site import render

            message = (
                f"there is no page {request.url.path} here: go to the dashboard"
                if status == 404
                else f"{request.method} is not how this page is used: go back and use its form"
            )
            return render(request, "error.html", None, status, kind=kind, message=message)
        text = f"no endpoint {request.method} {request.url.path}: see /api/v1/openapi.json"
        return JSONResponse(error_body(kind, text), status)

    async def failed(request: Request, exc: Exception) -> Response:
        """A bug in a page: logged in full (uvicorn logs the traceback), the visitor told in
        one line — never a traceback, never a bare "Internal Server Error"."""
        from ds01_web.site import render

        message = (
            f"ds01-web failed on {request.method} {request.url.path} ({type(exc).__name__}); "
            "it is logged: try again, and tell an admin if it keeps happening"
        )
        if request.url.path.startswith(PREFIX + "/"):
            return JSONResponse(error_body("internal", message), 500)
        try:
            return render(request, "error.html", None, 500, kind="internal", message=message)
        except Exception:  # the error page itself failed: plain words
            return Response(message, 500, media_type="text/plain; charset=utf-8")

    app = Starlette(
        routes=[
            Route("/api/v1/openapi.json", openapi, methods=["GET"]),
            Route(
                "/api/v1/{rest:path}",
                api.serve,
                methods=["GET", "POST", "DELETE", "PUT", "PATCH"],
            ),
            Mount(STATIC_URL, StaticFiles(directory=STATIC), name="static"),
            *login.ROUTES,
            *dashboard.ROUTES,
            *admin.ROUTES,
        ],
        exception_handlers={HTTPException: not_found, Exception: failed},
    )
    app.state.api = api
    app.state.site = site
    return app


__all__ = ["create_app"]
