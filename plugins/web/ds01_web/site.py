"""What every page handler shares: the signed-in visitor, CSRF, the rules for actions, running
an operation as the visitor, and rendering a template under the pages' security headers.

Pages call the same operations as the CLI and the REST API (:meth:`Visitor.call`), as the
signed-in user, so a page can do nothing the user could not do with ``ds01``. Handlers are
written as::

    @page                       # GET: signed in, or off to /login?next=…
    async def dashboard(request: Request, visitor: Visitor) -> Response: ...

    @action()                   # POST: signed in, CSRF checked, audited, rate limited
    async def stop(request: Request, visitor: Visitor, form: FormData) -> Response: ...

    @action(admin=True)         # and an admin who typed their password in the last 15 minutes
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ds01_core.api import (
    Caller,
    Event,
    Runtime,
    ServiceContext,
    ServiceError,
    invoke_operation,
    operation_table,
)
from ds01_web.config import WebConfig
from ds01_web.errors import WebError
from ds01_web.guard import RateLimiter
from ds01_web.pages import SECURITY_HEADERS, environment
from ds01_web.sessions import COOKIE, Session, SessionStore, csrf_ok

log = logging.getLogger("ds01.web")

PageHandler = Callable[[Request, "Visitor"], Awaitable[Response]]
ActionHandler = Callable[[Request, "Visitor", FormData], Awaitable[Response]]
NO_STORE = {"Cache-Control": "no-store"}


class Site:
    """The pages' shared state (``request.app.state.site``)."""

    def __init__(
        self,
        runtime: Runtime,
        settings: WebConfig,
        limiter: RateLimiter,
        threads: anyio.CapacityLimiter,
    ):
        self.runtime = runtime
        self.settings = settings
        self.limiter = limiter
        self.threads = threads
        self.sessions = SessionStore.under(
            runtime.config.paths.state_dir, float(settings.session_lifetime)
        )
        self.templates: jinja2.Environment = environment()

    def now(self) -> float:
        return time.time()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the operations' thread pool (state store calls block)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.threads)

    def event(self, event_type: str, user: str | None, details: dict[str, Any]) -> None:
        try:
            self.runtime.events.append(Event(event_type, user, "web", details))
        except OSError:
            log.exception("could not write %s to the event log", event_type)

    def has_operation(self, name: str) -> bool:
        """Is ``name`` served here (a plugin's pages show only what is installed)?"""
        return any(op.name == name for op in operation_table(self.runtime))


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def address_of(request: Request) -> str:
    return request.client.host if request.client else "?"


class Visitor:
    """A signed-in browser: its session and the caller it acts as (admin rights as the groups
    say now, not as they were at sign-in)."""

    def __init__(self, site: Site, session: Session, caller: Caller, secret: str):
        self.site = site
        self.session = session
        self.caller = caller
        self.secret = secret

    @property
    def is_admin(self) -> bool:
        return self.caller.admin

    def fresh(self) -> bool:
        return self.session.fresh(self.site.now(), float(self.site.settings.reauth_window))

    async def call(self, operation: str, **params: Any) -> Any:
        """Run ``operation`` as this visitor (the service's rules, errors and all)."""
        op = operation_table(self.site.runtime).get(operation)
        ctx = ServiceContext(self.site.runtime, self.caller)
        return await self.site.run(invoke_operation, ctx, op, params)


async def visitor_of(request: Request) -> Visitor | None:
    """The request's signed-in visitor, or None (no, an ended or an expired session, or an
    account that is gone or renamed since)."""
    site = site_of(request)
    secret = request.cookies.get(COOKIE)
    session = await site.run(site.sessions.get, secret, site.now())
    if session is None or secret is None:
        return None
    caller = Caller.from_uid(session.uid, site.runtime.config.gateway.admin_group)
    if caller is None or caller.name != session.user:
        return None
    return Visitor(site, session, caller, secret)


def safe_next(target: str | None) -> str:
    """A ``next=`` target that stays on this site (an absolute path, no scheme or host)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc or "\\" in target else target


def to_login(request: Request, where: str = "/login") -> Response:
    """Off to sign in, and back here after; htmx requests are told to load the page instead."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{where}?next={quote(safe_next(back), safe='/')}"
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": target, **NO_STORE})
    return RedirectResponse(target, 303, headers=NO_STORE)


def to_reauth(request: Request) -> Response:
    """Off to type the password again, and back after to the page the action was sent from
    (a POST's own URL cannot be opened again: after re-authentication the admin sends the
    action again from that page)."""
    came_from = request.headers.get("HX-Current-URL") or request.headers.get("referer") or ""
    parts = urlsplit(came_from)
    back = "/"
    if parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https"):
        back = safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    target = f"/reauth?next={quote(back, safe='/')}"
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": target, **NO_STORE})
    return RedirectResponse(target, 303, headers=NO_STORE)


def render(
    request: Request,
    template: str,
    visitor: Visitor | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``visitor`` (its name, navigation and CSRF token preset)."""
    site = site_of(request)
    values: dict[str, Any] = {"request_path": request.url.path}
    if visitor is not None:
        values.update(
            user=visitor.caller.name,
            is_admin=visitor.is_admin,
            csrf_token=visitor.session.csrf,
            nav=navigation(site, visitor, request.url.path),
        )
    values.update(context)
    html = site.templates.get_template(template).render(**values)
    return HTMLResponse(html, status, headers={**SECURITY_HEADERS, **NO_STORE})


def navigation(site: Site, visitor: Visitor, current: str) -> list[dict[str, Any]]:
    """The main navigation: the user's pages, Jobs where Slurm is installed, Admin for admins."""
    items = [
        ("/", "Dashboard"),
        ("/containers/new", "New container"),
        ("/usage", "Usage"),
        ("/carbon", "Carbon"),
    ]
    if site.has_operation("slurm.jobs"):
        items.append(("/jobs", "Jobs"))
    items.append(("/tokens", "Tokens"))
    if visitor.is_admin:
        items.append(("/admin", "Admin"))
    return [
        {
            "url": url,
            "label": label,
            "current": current == url or (url != "/" and current.startswith(url + "/")),
        }
        for url, label in items
    ]


def error_page(
    request: Request, visitor: Visitor | None, error: ServiceError | WebError
) -> HTMLResponse:
    """A refusal as a page (or, for htmx, the fragment that says it)."""
    status = error.status
    template = "fragments/error.html" if request.headers.get("HX-Request") else "error.html"
    return render(request, template, visitor, status, message=error.message, kind=error.kind)


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A GET page or fragment for signed-in users; a service refusal is shown, not raised."""

    @functools.wraps(handler)
    async def serve(request: Request) -> Response:
        visitor = await visitor_of(request)
        if visitor is None:
            return to_login(request)
        try:
            visitor.site.limiter.admit(visitor.caller.name)
            return await handler(request, visitor)
        except (ServiceError, WebError) as exc:
            return error_page(request, visitor, exc)

    return serve


def action(
    admin: bool = False,
) -> Callable[[ActionHandler], Callable[[Request], Awaitable[Response]]]:
    """A POST for signed-in users with the session's CSRF token (form field ``csrf_token`` or
    header ``X-CSRF-Token``) from this site's own pages; audited as ``web.request``. With
    ``admin``: only admins, and only within ``reauth_window`` of typing their password."""

    def wrap(handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def serve(request: Request) -> Response:
            site = site_of(request)
            visitor = await visitor_of(request)
            if visitor is None:
                return to_login(request)
            form = await request.form()
            endpoint = f"{request.method} {request.url.path}"
            address = address_of(request)
            presented = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
            if not csrf_ok(visitor.session, str(presented) if presented else None) or not (
                same_origin(request)
            ):
                refuse_forged(request, visitor.caller.name)
                return render(
                    request,
                    "error.html",
                    visitor,
                    403,
                    kind="forbidden",
                    message=(
                        "this form is out of date or did not come from ds01's own pages: "
                        "reload the page and try again"
                    ),
                )
            if admin and not visitor.is_admin:
                site.event(
                    "access.denied",
                    visitor.caller.name,
                    {"endpoint": endpoint, "address": address, "reason": "not an admin"},
                )
                return render(
                    request,
                    "error.html",
                    visitor,
                    403,
                    kind="forbidden",
                    message="only ds01 admins may do this",
                )
            if admin and not visitor.fresh():
                return to_reauth(request)
            status = 200
            try:
                site.limiter.admit(visitor.caller.name)
                response = await handler(request, visitor, form)
                status = response.status_code
                return response
            except (ServiceError, WebError) as exc:
                status = exc.status
                return error_page(request, visitor, exc)
            finally:
                site.event(
                    "web.request",
                    visitor.caller.name,
                    {
                        "endpoint": endpoint,
                        "address": address,
                        "status": status,
                        "session": visitor.session.method,
                    },
                )

        return serve

    return wrap


#: why a state-changing request was refused before anything was done (the audit's words)
FORGED = "CSRF token missing or wrong, or the request came from another site"


def refuse_forged(request: Request, user: str | None) -> None:
    """Record (``access.denied``) a form or htmx request without its CSRF token or from another
    site; the caller answers 403 with its own page."""
    site_of(request).event(
        "access.denied",
        user,
        {
            "endpoint": f"{request.method} {request.url.path}",
            "address": address_of(request),
            "reason": FORGED,
        },
    )


def same_origin(request: Request) -> bool:
    """No ``Origin`` (an old browser), or this site's own: a second line behind the token."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


__all__ = [
    "Site",
    "Visitor",
    "action",
    "address_of",
    "error_page",
    "page",
    "refuse_forged",
    "render",
    "safe_next",
    "same_origin",
    "site_of",
    "to_login",
    "to_reauth",
    "visitor_of",
]
