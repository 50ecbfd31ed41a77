"""The browser harness works: real Chromium against a real HTTP server on loopback.

A page made from the web plugin's base.html and its vendored assets is served by Python's
http.server on 127.0.0.1; Chromium (tests/helpers/browser.py) loads it and the tests check
what the dashboard will rely on: no request leaves loopback (under a CSP of 'self'), htmx's
polling really fetches the fragment again, Chart.js draws, axe-core finds no serious or
critical violation in light or dark colours, the keyboard reaches a visible skip link, and a
phone's width needs no sideways scrolling.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers.browser import (
    axe_violations,
    chromium,
    describe_violations,
    phone_context,
    set_phone_viewport,
)
from tests.helpers.web_pages import load_pages

pytest.importorskip("jinja2")

CSRF_TOKEN = "harness-csrf-token"
pages = load_pages()
STATIC: Path = pages.STATIC


class Site:
    """The harness's server: the page, a polled fragment (counted), the static files."""

    def __init__(self) -> None:
        env = pages.environment(Path(__file__).parent)
        self.page = (
            env.get_template("harness.html")
            .render(
                user="ds01ta",
                charts=True,
                csrf_token=CSRF_TOKEN,
                nav=[
                    {"url": "/", "label": "Dashboard", "current": True},
                    {"url": "/containers/new", "label": "New container", "current": False},
                    {"url": "/usage", "label": "Usage", "current": False},
                ],
            )
            .encode()
        )
        self.lock = threading.Lock()
        self.fragment_headers: list[dict[str, str]] = []
        self.spark_hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.fragment_headers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def send(self, status: int, body: bytes, ctype: str, secure: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in pages.SECURITY_HEADERS.items() if secure else ():
                    self.send_header(name, value)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/":
                    self.send(200, site.page, "text/html; charset=utf-8")
                elif path == "/fragment/live":
                    with site.lock:
                        site.fragment_headers.append(dict(self.headers.items()))
                        n = len(site.fragment_headers)
                    fragment = f'<p>GPU 0: <span id="reading">{n}</span> readings so far</p>'
                    self.send(200, fragment.encode(), "text/html; charset=utf-8")
                elif path == "/fragment/spark":
                    with site.lock:
                        site.spark_hits += 1
                        n = site.spark_hits
                    self.send(200, spark(n).encode(), "text/html; charset=utf-8")
                elif path == "/outside":
                    body = b'<!doctype html><title>x</title><img src="http://cdn.example.org/x.png" alt="">'
                    # no CSP here: the host-resolver rule alone must stop the request
                    self.send(200, body, "text/html; charset=utf-8", secure=False)
                elif path.startswith(pages.STATIC_URL + "/"):
                    file = (STATIC / path.removeprefix(pages.STATIC_URL + "/")).resolve()
                    if not file.is_relative_to(STATIC) or not file.is_file():
                        self.send(404, b"not found", "text/plain")
                        return
                    ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                    if file.suffix == ".js":
                        ctype = "text/javascript"
                    self.send(200, file.read_bytes(), ctype)
                else:
                    self.send(404, b"not found", "text/plain")

        return Handler


def spark(n: int) -> str:
    """A fragment with a chart of its own, as a card's live utilisation will be."""
    data = [(n + i) % 7 * 10 for i in range(10)]
    config = {
        "type": "line",
        "data": {"labels": list(range(10)), "datasets": [{"label": "GPU 0 %", "data": data}]},
    }
    return (
        '<figure class="chart"><div class="chart-box">'
        f'<canvas id="spark-canvas" data-chart=\'{json.dumps(config)}\' data-n="{n}"'
        f' role="img" aria-label="GPU 0 utilisation, last ten readings: {data}"></canvas>'
        "</div></figure>"
    )


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    s = Site()
    thread = threading.Thread(target=s.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class Recorder:
    """Every request a page makes, and every console error or uncaught exception."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.failed: dict[str, str] = {}
        self.errors: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("requestfailed", lambda r: self.failed.update({r.url: r.failure or "?"}))
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def outside(self) -> list[str]:
        """The requests to anything but http://127.0.0.1."""
        return [
            u
            for u in self.urls
            if urlsplit(u).scheme != "http" or urlsplit(u).hostname != "127.0.0.1"
        ]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    p = context.new_page()
    p.recorder = Recorder(p)
    try:
        yield p
    finally:
        context.close()


def load(page: Any, site: Site) -> None:
    """Open the harness page and wait for the chart and the first poll."""
    page.goto(site.url + "/")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('usage-canvas'))"
    )
    page.wait_for_selector("#reading")


def test_every_request_stays_on_loopback(page: Any, site: Site) -> None:
    load(page, site)
    page.wait_for_timeout(400)  # a poll or two more
    rec = page.recorder
    assert rec.outside() == [], f"requests left 127.0.0.1: {rec.outside()}"
    paths = {urlsplit(u).path for u in rec.urls}
    for asset in (
        "/static/ds01.css",
        "/static/ds01.js",
        "/static/vendor/htmx.org-2.0.11/htmx.min.js",
        "/static/vendor/chart.js-4.6.1/chart.umd.min.js",
    ):
        assert asset in paths, f"{asset} was never requested: {sorted(paths)}"
    assert rec.failed == {}, f"requests failed: {rec.failed}"
    assert rec.errors == [], f"console errors (CSP violations among them): {rec.errors}"


def test_the_recorder_sees_a_request_to_another_host(page: Any, site: Site) -> None:
    """The check above can fail: an outside URL is recorded, and the resolver rule stops it."""
    page.goto(site.url + "/outside")
    page.wait_for_load_state("load")
    assert page.recorder.outside() == ["http://cdn.example.org/x.png"]
    # the page has no CSP: the resolver rule stopped it
    assert page.recorder.failed == {"http://cdn.example.org/x.png": "net::ERR_NAME_NOT_RESOLVED"}


def test_htmx_polling_fetches_the_fragment_again(page: Any, site: Site) -> None:
    before = site.hits
    load(page, site)
    page.wait_for_function(
        "n => Number(document.getElementById('reading').textContent) >= n", arg=before + 3
    )
    shown = int(page.text_content("#reading") or 0)
    assert site.hits - before >= 3
    assert shown <= site.hits  # the page shows what the server last counted, not a stale copy
    headers = site.fragment_headers[-1]
    assert headers.get("HX-Request") == "true"
    assert headers.get("X-CSRF-Token") == CSRF_TOKEN  # ds01.js sends the page's token


def test_chart_draws_on_its_canvas(page: Any, site: Site) -> None:
    load(page, site)
    painted = page.evaluate(
        """() => {
            const c = document.getElementById('usage-canvas');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
            return {n, total: c.width * c.height};
        }"""
    )
    assert painted["total"] > 0, "the canvas has no size"
    assert painted["n"] > painted["total"] * 0.01, f"the canvas is (nearly) blank: {painted}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation(browser: Any, site: Site, scheme: str) -> None:
    context = browser.new_context(color_scheme=scheme)
    try:
        p = context.new_page()
        load(p, site)
        background = p.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}[scheme]
        violations = axe_violations(p)
        assert violations == [], describe_violations(violations)
    finally:
        context.close()


def test_keyboard_reaches_a_visible_skip_link_first(page: Any, site: Site) -> None:
    load(page, site)
    page.keyboard.press("Tab")
    focused = page.evaluate(
        """() => {
            const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
            return {cls: e.className, outline: s.outlineStyle, width: s.outlineWidth, top: r.top};
        }"""
    )
    assert focused["cls"] == "skip-link"
    assert focused["outline"] == "solid" and focused["width"] == "3px", focused
    assert focused["top"] >= 0, "the focused skip link is off screen"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


def test_a_phone_width_needs_no_sideways_scrolling(browser: Any, site: Site) -> None:
    with phone_context(browser) as context:
        p = context.new_page()
        load(p, site)
        sizes = p.evaluate(
            """() => ({scroll: document.scrollingElement.scrollWidth, inner: innerWidth,
                      table: document.getElementById('audit-scroll').scrollWidth,
                      tableBox: document.getElementById('audit-scroll').clientWidth})"""
        )
        assert sizes["inner"] == 360
        assert sizes["scroll"] <= sizes["inner"], f"the page scrolls sideways: {sizes}"
        # the wide table scrolls inside its own box instead (so the check above is not idle)
        assert sizes["table"] > sizes["tableBox"], sizes
        violations = axe_violations(p)
        assert violations == [], describe_violations(violations)


def test_set_phone_viewport_narrows_a_page(page: Any, site: Site) -> None:
    load(page, site)
    set_phone_viewport(page, 320)
    assert page.evaluate("() => innerWidth") == 320
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 320


def test_axe_reports_a_page_with_faults(page: Any, site: Site) -> None:
    """axe_violations can fail: an image without alt text and an unlabelled field."""
    page.goto(site.url + "/outside")  # a loopback origin for the page; its img never loads
    page.set_content(
        '<!doctype html><html lang="en"><title>t</title><main>'
        '<img src="/static/favicon.svg"><input type="text"></main></html>'
    )
    ids = sorted(v["id"] for v in axe_violations(page))
    assert ids == ["image-alt", "label"]


def test_charts_in_polled_fragments_are_redrawn_and_the_old_ones_destroyed(
    page: Any, site: Site
) -> None:
    load(page, site)
    page.wait_for_function(
        "() => Number(document.getElementById('spark-canvas')?.dataset.n) >= 4"
        " && Chart.getChart(document.getElementById('spark-canvas'))"
    )
    # the page's own chart and the latest fragment's: the swapped-out ones were destroyed
    assert page.evaluate("() => Object.keys(Chart.instances).length") == 2
    assert page.recorder.errors == []
