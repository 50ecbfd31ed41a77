"""The web plugin's vendored JavaScript is what the manifest says, and no page leaves the app.

No browser needed: the files under each vendor folder must be exactly those MANIFEST.json
lists, with its sha256 (no stray, missing or modified file), pinned as
scripts/vendor-web-assets.sh pins them, each package with its licence; the templates and the
app's own CSS and JavaScript may reference only the app's own URLs (no CDN), every static file
they name must exist, and nothing inline that a "script-src 'self'" policy would block.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "plugins" / "web" / "ds01_web"
STATIC = WEB / "static"
VENDOR_DIRS = [STATIC / "vendor", ROOT / "tests" / "vendor"]
SCRIPT = ROOT / "scripts" / "vendor-web-assets.sh"
TEMPLATES = [*sorted((WEB / "templates").rglob("*.html")), Path(__file__).parent / "harness.html"]
OWN_ASSETS = [STATIC / "ds01.css", STATIC / "ds01.js"]

#: src=, href=, action=, formaction=, poster= and htmx's hx-get/post/put/patch/delete=
URL_ATTR = re.compile(
    r"""\b(?:src|href|action|formaction|poster|hx-(?:get|post|put|patch|delete))\s*=\s*["']([^"']*)["']"""
)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]*)|@import\s+["']([^"']*)""")
#: a scheme (http:, https:, ftp:, javascript:, …) or a protocol-relative //host
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def manifest(folder: Path) -> dict:
    return json.loads((folder / "MANIFEST.json").read_text())


@pytest.mark.parametrize("folder", VENDOR_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_vendored_files_are_exactly_the_manifests(folder: Path) -> None:
    listed: dict[str, str] = {}
    for package in manifest(folder)["packages"]:
        prefix = f"{package['name']}-{package['version']}/"
        for name, digest in package["files"].items():
            assert name.startswith(prefix), f"{name} is outside {prefix}"
            listed[name] = digest
        licences = [n for n in package["files"] if Path(n).name.upper().startswith("LICENSE")]
        assert licences, f"{package['name']} is vendored without its licence file"
    on_disk = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    stray = sorted(set(on_disk) - set(listed))
    missing = sorted(set(listed) - set(on_disk))
    modified = sorted(n for n in set(on_disk) & set(listed) if on_disk[n] != listed[n])
    hint = "run scripts/vendor-web-assets.sh; never edit vendored files by hand"
    assert not stray, f"files not in {folder}/MANIFEST.json: {stray}; {hint}"
    assert not missing, f"files in the manifest but missing: {missing}; {hint}"
    assert not modified, f"vendored files changed since they were vendored: {modified}; {hint}"


def test_manifests_hold_the_scripts_pins() -> None:
    pinned = set(re.findall(r'^\s*"\$\w+ (\S+) (\S+) (sha512-\S+)', SCRIPT.read_text(), re.M))
    vendored = {
        (p["name"], p["version"], p["integrity"])
        for folder in VENDOR_DIRS
        for p in manifest(folder)["packages"]
    }
    assert pinned, f"no package lines found in {SCRIPT}"
    assert pinned == vendored, "the vendored packages differ from the script's pins: run it"


def source(path: Path) -> str:
    """The file's text without Jinja2 comments ({# … #}), which never reach a browser."""
    return re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)


def references(path: Path) -> list[str]:
    text = source(path)
    if path.suffix == ".css":
        return [a or b for a, b in CSS_URL.findall(text)]
    if path.suffix == ".js":
        return re.findall(r"""["'`]((?:https?:)?//[^"'`\s]+)""", text)
    return URL_ATTR.findall(text)


@pytest.mark.parametrize("path", TEMPLATES + OWN_ASSETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_reference_only_the_app(path: Path) -> None:
    refs = references(path)
    external = [r for r in refs if EXTERNAL.match(r.strip())]
    assert not external, (
        f"{path.relative_to(ROOT)} references URLs outside the app: {external}; "
        "vendor the asset (scripts/vendor-web-assets.sh) and serve it from /static"
    )


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_static_files_the_templates_name_exist(path: Path) -> None:
    named = [
        r.removeprefix("{{ static }}/") for r in references(path) if r.startswith("{{ static }}/")
    ]
    missing = [n for n in named if not (STATIC / n).is_file()]
    assert not missing, f"{path.name} names static files that do not exist: {missing}"


def test_base_template_loads_the_vendored_scripts() -> None:
    """The check above has something to check: base.html names the vendored files."""
    named = references(WEB / "templates" / "base.html")
    for package in manifest(STATIC / "vendor")["packages"]:
        folder = f"{package['name']}-{package['version']}/"
        assert any(folder in r for r in named), f"base.html does not load {folder}"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_nothing_inline_a_strict_csp_blocks(path: Path) -> None:
    text = source(path)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", text, re.S)
    inline = [attrs for attrs, body in scripts if body.strip() and "application/json" not in attrs]
    assert not inline, f"{path.name} has inline scripts (blocked by script-src 'self'): {inline}"
    handlers = re.findall(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", text)
    assert not handlers, f"{path.name} has inline event handlers: {handlers}; use ds01.js"
    styles = re.findall(r"<style\b|\sstyle\s*=", text)
    assert not styles, f"{path.name} has inline styles; put them in ds01.css"
