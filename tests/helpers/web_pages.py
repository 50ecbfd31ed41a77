"""The web plugin's ds01_web/pages.py for tests, loaded by its path.

pages.py needs only jinja2, so the page tests run without the ds01-web distribution installed;
once it is, ``from ds01_web import pages`` gives the same module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PAGES_PY = Path(__file__).resolve().parents[2] / "plugins" / "web" / "ds01_web" / "pages.py"


def load_pages() -> ModuleType:
    """ds01_web/pages.py as a module of its own (jinja2 must be importable)."""
    spec = importlib.util.spec_from_file_location("ds01_web_pages", PAGES_PY)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {PAGES_PY}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
