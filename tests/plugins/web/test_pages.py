"""ds01_web/pages.py renders base.html as every page will use it, under a strict policy."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("jinja2")

from tests.helpers.web_pages import load_pages

pages = load_pages()


def render(source: str, **context: object) -> str:
    return str(pages.environment().from_string(source).render(**context))


def test_base_renders_with_no_variables_at_all() -> None:
    """StrictUndefined: a variable base.html forgets to default would raise here."""
    html = render('{% extends "base.html" %}{% block content %}<h1>Hi</h1>{% endblock %}')
    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    body = html.split("<body>", 1)[1]
    assert re.match(r'\s*<a class="skip-link" href="#main">', body), "the skip link comes first"
    assert '<main id="main" tabindex="-1"><h1>Hi</h1>' in html
    assert "<header" in html and "<footer" in html
    assert 'src="/static/vendor/htmx.org-2.0.11/htmx.min.js"' in html
    assert "chart.umd.min.js" not in html  # only pages with charts=True load Chart.js
    assert "csrf-token" not in html and "<nav" not in html


def test_base_marks_the_current_page_and_escapes_what_it_shows() -> None:
    html = render(
        '{% extends "base.html" %}',
        user="<script>x</script>",
        csrf_token="t0k",
        charts=True,
        nav=[{"url": "/a", "label": "A", "current": True}, {"url": "/b", "label": "B"}],
    )
    assert '<a href="/a" aria-current="page">A</a>' in html
    assert '<a href="/b">B</a>' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert '<meta name="csrf-token" content="t0k">' in html
    assert "chart.umd.min.js" in html


def test_the_policy_allows_nothing_inline_or_foreign() -> None:
    csp = pages.SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert pages.vendored()["packages"], "static/vendor/MANIFEST.json lists no package"
