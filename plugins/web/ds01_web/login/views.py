"""GET/POST /login, POST /logout and GET/POST /reauth: signing in with a password, signing
out, and typing the password again before admin actions.

A refused password gets the same answer whatever was wrong (401, "user name or password is
wrong"); the brake (:mod:`ds01_web.login.brake`) answers 429 after too many. Every attempt is a
``web.login`` event with the method and the source address; signing out is ``web.logout``.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ds01_web.login.brake import keys_for
from ds01_web.login.passwords import MAX_NAME, check_password, local_account
from ds01_web.login.state import LOGIN_COOKIE, LOGIN_COOKIE_AGE, cookie, login_state
from ds01_web.sessions import COOKIE, clear_cookie_header, cookie_header, csrf_ok
from ds01_web.site import (
    NO_STORE,
    Site,
    Visitor,
    action,
    address_of,
    refuse_forged,
    render,
    safe_next,
    same_origin,
    site_of,
    to_login,
    visitor_of,
)

WRONG = "user name or password is wrong"
STALE_FORM = (
    "this sign-in form is out of date or did not come from ds01's own pages: reload the page "
    "and sign in again"
)


def braked_message(wait: int) -> str:
    minutes = max(1, (wait + 59) // 60)
    return (
        "too many failed sign-ins for this user name or from this address: wait "
        f"{minutes} minute{'s' if minutes != 1 else ''} and try again (or ask an admin)"
    )


def _login_page(
    request: Request,
    site: Site,
    status: int = 200,
    message: str = "",
    name: str = "",
    target: str | None = None,
) -> Response:
    """The sign-in form, with a fresh pre-session CSRF cookie when the browser has none."""
    state = login_state(request)
    value = request.cookies.get(LOGIN_COOKIE)
    fresh = not value or len(value) > 200 or not value.isascii()
    if fresh:
        value = secrets.token_urlsafe(32)
    assert value is not None
    login = site.settings.login
    response = render(
        request,
        "login/login.html",
        None,
        status,
        title="Sign in",
        form_token=state.form_token(value),
        next=safe_next(target if target is not None else request.query_params.get("next")),
        message=message,
        name=name,
        passwords=bool(login.methods),
        methods=list(login.methods),
        oidc_label=login.oidc.label if login.oidc else None,
    )
    if fresh:
        response.headers.append("set-cookie", cookie(LOGIN_COOKIE, value, LOGIN_COOKIE_AGE))
    return response


async def login_form(request: Request) -> Response:
    visitor = await visitor_of(request)
    if visitor is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303, NO_STORE)
    return _login_page(request, site_of(request))


def login_event(
    site: Site, user: str | None, result: str, method: str | None, address: str, **more: Any
) -> None:
    site.event("web.login", user, {"result": result, "method": method, "address": address, **more})


async def _checked(
    request: Request, site: Site, name: str, password: str, address: str, target: str
) -> str | Response:
    """The method that accepted ``name``'s ``password``, or the refusal to send (401 or 429)."""
    state = login_state(request)
    keys = keys_for(name, address)
    known = name if local_account(name, site.settings.login.min_uid) else None
    shown = name[:MAX_NAME]
    wait = state.brake.wait(keys, site.now())
    if wait:
        login_event(site, known, "braked", None, address, name=shown)
        response = _login_page(request, site, 429, braked_message(wait), shown, target)
        response.headers["Retry-After"] = str(wait)
        return response
    checked = await site.run(check_password, site.runtime, site.settings.login, name, password)
    if checked.method is None:
        state.brake.failed(keys, site.now())
        login_event(site, known, "refused", None, address, name=shown, why=checked.why)
        return _login_page(request, site, 401, WRONG, shown, target)
    state.brake.forget(keys[0])
    return checked.method


async def login_submit(request: Request) -> Response:
    site = site_of(request)
    address = address_of(request)
    form = await request.form()
    state = login_state(request)
    if not same_origin(request) or not state.form_ok(
        request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")
    ):
        refuse_forged(request, None)
        return _login_page(request, site, 403, STALE_FORM, target=str(form.get("next") or ""))
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    if not site.settings.login.methods:
        return _login_page(
            request, site, 400, "passwords are not accepted here: use the single sign-on link"
        )
    found = await _checked(request, site, name, password, address, target)
    if isinstance(found, Response):
        return found
    account = local_account(name, site.settings.login.min_uid)
    if account is None:  # gone between the check and now
        return _login_page(request, site, 401, WRONG, name, target)
    await site.run(site.sessions.end, request.cookies.get(COOKIE))  # a session it replaces
    return await start_session(site, name, account.pw_uid, found, address, target)


async def start_session(
    site: Site, name: str, uid: int, method: str, address: str, target: str
) -> Response:
    """A new session for ``name``: its cookie, the ``web.login`` event, and off to ``target``."""
    secret, _ = await site.run(site.sessions.create, name, uid, method, site.now())
    login_event(site, name, "ok", method, address)
    response = RedirectResponse(target, 303, NO_STORE)
    response.headers.append(
        "set-cookie", cookie_header(secret, int(float(site.settings.session_lifetime)))
    )
    response.headers.append("set-cookie", cookie(LOGIN_COOKIE, "", 0))
    return response


@action()
async def logout(request: Request, visitor: Visitor, form: FormData) -> Response:
    site = visitor.site
    await site.run(site.sessions.end, visitor.secret)
    site.event(
        "web.logout",
        visitor.caller.name,
        {"address": address_of(request), "method": visitor.session.method},
    )
    response = RedirectResponse("/login", 303, NO_STORE)
    response.headers.append("set-cookie", clear_cookie_header())
    return response


def _reauth_page(
    request: Request, visitor: Visitor, status: int = 200, message: str = "", target: str = "/"
) -> Response:
    login = visitor.site.settings.login
    return render(
        request,
        "login/reauth.html",
        visitor,
        status,
        title="Confirm it is you",
        next=safe_next(target),
        message=message,
        passwords=bool(login.methods),
        oidc_label=(login.oidc.label if login.oidc and visitor.session.method == "oidc" else None),
    )


async def reauth_form(request: Request) -> Response:
    visitor = await visitor_of(request)
    if visitor is None:
        return to_login(request)
    return _reauth_page(request, visitor, target=request.query_params.get("next") or "/")


async def reauth_submit(request: Request) -> Response:
    site = site_of(request)
    visitor = await visitor_of(request)
    if visitor is None:
        return to_login(request)
    address = address_of(request)
    form = await request.form()
    target = safe_next(str(form.get("next") or ""))
    presented = form.get("csrf_token")
    if not same_origin(request) or not csrf_ok(
        visitor.session, presented if isinstance(presented, str) else None
    ):
        refuse_forged(request, visitor.caller.name)
        return _reauth_page(request, visitor, 403, STALE_FORM, target)
    state = login_state(request)
    name = visitor.caller.name
    keys = keys_for(name, address)
    wait = state.brake.wait(keys, site.now())
    if wait:
        login_event(site, name, "braked", None, address, reauth=True)
        response = _reauth_page(request, visitor, 429, braked_message(wait), target)
        response.headers["Retry-After"] = str(wait)
        return response
    password = str(form.get("password") or "")
    checked = await site.run(check_password, site.runtime, site.settings.login, name, password)
    if checked.method is None:
        state.brake.failed(keys, site.now())
        login_event(site, name, "refused", None, address, reauth=True, why=checked.why)
        return _reauth_page(request, visitor, 401, "the password is wrong", target)
    await site.run(site.sessions.reauthenticated, visitor.secret, site.now())
    login_event(site, name, "ok", checked.method, address, reauth=True)
    return RedirectResponse(target, 303, NO_STORE)


__all__ = [
    "login_form",
    "login_submit",
    "logout",
    "reauth_form",
    "reauth_submit",
    "start_session",
]
