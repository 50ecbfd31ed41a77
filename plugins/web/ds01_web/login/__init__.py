"""The sign-in pages: /login (passwords by PAM or LDAP), /login/oidc/… (single sign-on),
/logout, and /reauth (the password again before admin actions). Routes collected by
:func:`ds01_web.app.create_app`."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ds01_web.login import oidc_views, views

ROUTES: list[BaseRoute] = [
    Route("/login", views.login_form, methods=["GET"]),
    Route("/login", views.login_submit, methods=["POST"]),
    Route("/logout", views.logout, methods=["POST"]),
    Route("/reauth", views.reauth_form, methods=["GET"]),
    Route("/reauth", views.reauth_submit, methods=["POST"]),
    Route("/login/oidc/start", oidc_views.start, methods=["GET"]),
    Route("/login/oidc/callback", oidc_views.callback, methods=["GET"]),
]
