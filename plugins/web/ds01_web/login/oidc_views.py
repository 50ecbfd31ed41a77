"""GET /login/oidc/start and GET /login/oidc/callback: single sign-on through the configured
OpenID provider, for signing in and for re-authentication (``?reauth=1``, the provider asked
for a fresh login with ``prompt=login`` and ``max_age=0``).

The flow's state, nonce and PKCE verifier stay on the server (:class:`~ds01_web.login.state.Flow`,
ten minutes, used once); the browser that started it holds a random value in the
``ds01_oidc`` cookie (``SameSite=Lax``, so it comes back on the provider's redirect, and only
under /login/oidc) whose digest the flow must match. The session cookie itself is
``SameSite=Strict``, which a browser does not send on a chain of redirects that began on
another site, so the callback answers with a page that moves on to ``next`` by itself.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ds01_web.config import WebConfig
from ds01_web.login.oidc import LEEWAY, OidcError, Provider, pkce_pair
from ds01_web.login.passwords import local_account
from ds01_web.login.state import Flow, binding_of, cookie, login_state
from ds01_web.login.views import login_event, start_session
from ds01_web.sessions import csrf_ok
from ds01_web.site import NO_STORE, Site, address_of, render, safe_next, site_of, visitor_of

log = logging.getLogger("ds01.web.login")
FLOW_COOKIE = "ds01_oidc"
FLOW_PATH = "/login/oidc"
_PROVIDERS: dict[int, Provider] = {}
_LOCK = threading.Lock()


def provider_of(settings: WebConfig) -> Provider | None:
    oidc = settings.login.oidc
    if oidc is None:
        return None
    with _LOCK:
        found = _PROVIDERS.get(id(oidc))
        if found is None or found.config is not oidc:
            found = _PROVIDERS[id(oidc)] = Provider(oidc)
    return found


def _page(request: Request, status: int, message: str) -> Response:
    return render(
        request,
        "login/problem.html",
        None,
        status,
        title="Single sign-on did not work",
        message=message,
    )


async def start(request: Request) -> Response:
    site = site_of(request)
    provider = provider_of(site.settings)
    if provider is None:
        return _page(request, 404, "single sign-on is not set up here: sign in with your password")
    target = safe_next(request.query_params.get("next"))
    reauth_secret = reauth_user = None
    if request.query_params.get("reauth"):
        visitor = await visitor_of(request)
        if visitor is None or not csrf_ok(visitor.session, request.query_params.get("csrf")):
            return RedirectResponse("/login?next=" + target, 303, NO_STORE)
        reauth_secret, reauth_user = visitor.secret, visitor.caller.name
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    browser = secrets.token_urlsafe(32)
    try:
        url = await site.run(
            provider.authorization_url, state, nonce, challenge, reauth_user is not None
        )
    except OidcError as exc:
        log.warning("single sign-on start: %s", exc.detail)
        return _page(request, 502, exc.message)
    login_state(request).add_flow(
        state,
        Flow(nonce, verifier, target, site.now(), binding_of(browser), reauth_secret, reauth_user),
    )
    response = RedirectResponse(url, 303, NO_STORE)
    response.headers.append("set-cookie", cookie(FLOW_COOKIE, browser, 600, FLOW_PATH, "Lax"))
    return response


def _continue(request: Request, target: str, status: int = 200) -> Response:
    """A page that moves on to ``target`` itself (so the Strict session cookie goes along)."""
    response = render(
        request, "login/continue.html", None, status, title="Signed in", next=safe_next(target)
    )
    response.headers.append("set-cookie", cookie(FLOW_COOKIE, "", 0, FLOW_PATH, "Lax"))
    return response


async def callback(request: Request) -> Response:
    site = site_of(request)
    address = address_of(request)
    provider = provider_of(site.settings)
    if provider is None:
        return _page(request, 404, "single sign-on is not set up here: sign in with your password")
    flow = login_state(request).take_flow(request.query_params.get("state") or "", site.now())
    browser = request.cookies.get(FLOW_COOKIE) or ""
    if flow is None or not hmac.compare_digest(flow.binding, binding_of(browser)):
        login_event(site, None, "refused", "oidc", address, why="unknown, used or foreign state")
        return _page(
            request,
            400,
            "this sign-in is out of date or was started in another browser: go to the sign-in "
            "page and start again",
        )
    found = await _identify(request, site, provider, flow, address)
    if isinstance(found, Response):
        return found
    name, uid = found
    if flow.reauth_secret is not None:
        await site.run(site.sessions.reauthenticated, flow.reauth_secret, site.now())
        login_event(site, name, "ok", "oidc", address, reauth=True)
        return _continue(request, flow.next)
    made = await start_session(site, name, uid, "oidc", address, flow.next)
    response = _continue(request, flow.next)
    for value in made.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", value)
    return response


async def _identify(
    request: Request, site: Site, provider: Provider, flow: Flow, address: str
) -> tuple[str, int] | Response:
    """The local user (name, uid) the provider vouches for, or the page that says why not."""
    query = request.query_params
    error, code = query.get("error"), query.get("code")
    who = flow.reauth_user
    issuer = query.get("iss")
    if issuer is not None and issuer != provider.config.issuer:  # RFC 9207: a mix-up
        login_event(site, who, "refused", "oidc", address, why=f"answer from issuer {issuer!r}")
        return _page(request, 400, "that answer came from another sign-in provider: start again")
    if error or not code:
        said = (query.get("error_description") or error or "no code")[:200]
        login_event(site, who, "refused", "oidc", address, why=f"provider: {said}")
        return _page(
            request, 401, f"the single sign-on provider did not sign you in ({said}): try again"
        )
    try:
        identity = await site.run(provider.redeem, code, flow.verifier, flow.nonce, site.now())
    except OidcError as exc:
        log.warning("single sign-on: %s", exc.detail)
        login_event(site, who, "refused", "oidc", address, why=exc.detail[:500])
        return _page(request, 401, exc.message)
    name = identity.username
    account = local_account(name, site.settings.login.min_uid)
    if account is None:
        why = "no local account (or a uid below plugins.web.login.min_uid)"
        login_event(site, None, "refused", "oidc", address, name=name[:64], why=why)
        return _page(
            request,
            403,
            f"the provider signed you in as {name}, but this server has no account {name}: "
            "ask an admin to create it",
        )
    if who is not None:
        fresh = identity.auth_time is not None and identity.auth_time >= flow.started - LEEWAY
        if name != who or not fresh:
            why = "another user" if name != who else "the provider did not ask for a fresh login"
            login_event(site, who, "refused", "oidc", address, reauth=True, why=why)
            return _page(
                request,
                403,
                f"the confirmation did not prove it is {who} just now ({why}): try again",
            )
    return name, account.pw_uid


__all__ = ["callback", "start"]
