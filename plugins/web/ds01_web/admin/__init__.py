"""The admin pages (routes collected by :func:`ds01_web.app.create_app`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
