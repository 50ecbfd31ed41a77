"""Where the web pages' templates and static files lie, and how they are rendered and served.

The app serves :data:`STATIC` at ``/static`` and renders pages with :func:`environment`
(autoescaping on, an undefined variable an error, ``static`` preset); every page response
carries :data:`SECURITY_HEADERS`, whose policy the pages are written for: nothing from another
origin, no inline script or style (tests/plugins/web checks both, in Chromium and in the
templates' text). Needs only jinja2 and the standard library, so tests can load it by path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: the URL path STATIC is served under (templates use ``{{ static }}``)
STATIC_URL = "/static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def environment(*extra_template_dirs: Path) -> jinja2.Environment:
    """A Jinja2 environment for ds01's templates (and ``extra_template_dirs`` after them)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES, *extra_template_dirs]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    env.globals["static"] = STATIC_URL
    return env


def vendored() -> dict[str, Any]:
    """static/vendor/MANIFEST.json: the vendored packages, their versions and files' sha256."""
    manifest: dict[str, Any] = json.loads((STATIC / "vendor" / "MANIFEST.json").read_text())
    return manifest
