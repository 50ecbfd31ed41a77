"""``ds01 setup``'s way to the project commands: create the first project and start it, by
calling the project module's functions (never by running ``ds01`` again)."""

from __future__ import annotations

from typing import Any

import attrs

from ds01_projects.settings import Settings


class Error(Exception):
    """A project that could not be made or started; the message says why."""


class UsageError(Error):
    """A wrong name or flag (exit 2)."""


@attrs.frozen
class Done:
    message: str
    changed: tuple[str, ...] = ()


def init(state: Any, settings: Settings, name: str, *, base: str | None, gpus: int | None) -> Done:
    """``ds01 project init NAME --yes`` with the wizard's base and GPUs."""
    raise Error("project creation is not available in this version of ds01-projects")


def launch(state: Any, settings: Settings, name: str) -> Done:
    """``ds01 project launch NAME``."""
    raise Error("project launch is not available in this version of ds01-projects")
