"""The admin pages (routes collected by :func:`ds01_web.app.create_app`): the overview with
the health tiles, allocation map, queue and alerts (:mod:`.panel`), users (:mod:`.users`),
quota overrides (:mod:`.overrides`) and the audit log (:mod:`.audit`). Admins only: anyone else
gets a 403 page and an ``access.denied`` event (:mod:`.common`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ds01_web.admin import audit, overrides, panel, users

ROUTES: list[BaseRoute] = [*panel.ROUTES, *users.ROUTES, *overrides.ROUTES, *audit.ROUTES]
