"""Debian's headless Chromium, driven by Playwright, for the web plugin's browser tests.

Never ``playwright install`` (it downloads browsers from a CDN): :func:`chromium` launches
``/usr/bin/chromium`` (``bash scripts/ci/setup-browser.sh`` installs it) with a host-resolver
rule that resolves nothing but loopback, so a page can reach no outside host — not even the
Google hosts Chromium looks up by itself. :func:`axe_violations` runs the axe-core vendored in
tests/vendor/ (pinned, see scripts/vendor-web-assets.sh); :func:`set_phone_viewport` and
:func:`phone_context` give a phone's width.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("DS01_CHROMIUM", "/usr/bin/chromium"))
SETUP_HINT = "install it with: bash scripts/ci/setup-browser.sh (as root)"
VENDOR = Path(__file__).resolve().parents[1] / "vendor"

#: Playwright adds --no-sandbox itself (needed as root). The rest keeps Chromium quiet and
#: local: without the resolver rule it looks up update.googleapis.com and
#: content-autofill.googleapis.com; without EXCLUDE 127.0.0.1 even loopback pages fail.
CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
)

#: a small phone in portrait (CSS pixels), as most phones' widths are 360 to 430
PHONE = {"width": 360, "height": 740}


def _unavailable(reason: str) -> None:
    """Skip locally, fail under CI=true: a missing browser must never turn CI green."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must not be skipped)", pytrace=False)
    pytest.skip(f"{reason}; {SETUP_HINT}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Playwright ``Browser`` (sync API) on Debian's Chromium; closed at the end.

    Skips (fails under CI=true) when Chromium or the playwright package is missing.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def axe_script() -> Path:
    """The vendored ``axe.min.js``, as tests/vendor/MANIFEST.json names it."""
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    for package in manifest["packages"]:
        if package["name"] == "axe-core":
            return VENDOR / f"axe-core-{package['version']}" / "axe.min.js"
    raise FileNotFoundError(
        f"{VENDOR / 'MANIFEST.json'} names no axe-core; run scripts/vendor-web-assets.sh"
    )


def axe_violations(
    page: Any, impacts: Iterable[str] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` (its WCAG 2.0/2.1 A and AA rules and best
    practices) whose impact is one of ``impacts``; each keeps axe's ``id``, ``impact``,
    ``help`` and ``nodes`` (their ``target`` selectors say where)."""
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    results = Axe.from_file(str(axe_script())).run(page)
    wanted = set(impacts)
    return [v for v in results.response["violations"] if v.get("impact") in wanted]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """One line per violation and where, for an assertion message."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in violations
    )


def set_phone_viewport(page: Any, width: int = PHONE["width"]) -> None:
    """Give ``page`` a phone's viewport (``width`` CSS pixels, portrait)."""
    page.set_viewport_size({"width": width, "height": PHONE["height"]})


@contextmanager
def phone_context(browser: Any) -> Iterator[Any]:
    """A browser context that presents itself as a phone: its width, touch, the mobile
    viewport meta honoured, a 2x screen."""
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    try:
        yield context
    finally:
        context.close()
