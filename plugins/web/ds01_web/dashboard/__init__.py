"""The user pages (routes collected by :func:`ds01_web.app.create_app`): the dashboard and its
container buttons, the creation wizard, usage, carbon, Slurm jobs and API tokens. See docs/web-pages.md."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ds01_web.dashboard import carbon, home, jobs, tokens, usage, wizard

#: the wizard's /containers/new before home's /containers/{name}/…
ROUTES: list[BaseRoute] = [
    *wizard.ROUTES,
    *home.ROUTES,
    *usage.ROUTES,
    *carbon.ROUTES,
    *jobs.ROUTES,
    *tokens.ROUTES,
]
