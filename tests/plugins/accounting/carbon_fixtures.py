"""Runtimes with a ``plugins.accounting.carbon`` section, and a clock tests move by hand.

The clock replaces ``runtime.now`` (what the cache's TTL and the providers' "now" use), so a
test passes the TTL without sleeping; a second runtime on the same configuration is a
restart (or a CLI command) reading the cache file the first one wrote.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ds01_accounting
from ds01_core.framework.runtime import Runtime, load_runtime


class Clock:
    """A settable ``now``; starts at the real time (the providers' answers are built around it)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def secret(directory: Path, name: str, value: str) -> str:
    """A root-only key or password file, as the admin writes it."""
    path = directory / name
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return str(path)


def carbon_runtime(
    tmp_config: Callable[..., Path], carbon: dict[str, Any], clock: Clock | None = None
) -> Runtime:
    """A runtime with ds01-accounting and ``carbon`` as its carbon section; ``clock`` as now."""
    path = tmp_config({"plugins": {"accounting": {"carbon": carbon}}})
    return reopen(path, clock)


def reopen(path: Path, clock: Clock | None = None) -> Runtime:
    """Another runtime on the same configuration: what a restart or a CLI command gets."""
    runtime = load_runtime(
        str(path), no_plugins=True, extra_plugins=(("accounting", ds01_accounting),)
    )
    if clock is not None:
        runtime.now = clock  # type: ignore[method-assign]
    return runtime
