"""Choosing a base and packages for ``ds01 image``: from flags, or asked on a terminal.

A base is a catalogue key (``pytorch``) or an image reference (``python:3.12``); the admin's
``allowed_bases`` decides which references are allowed, and a refusal lists what is.
"""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table

from ds01_core.api import Invalid
from ds01_projects.config import CatalogueEntry
from ds01_projects.settings import Settings

#: an image reference: repository (lower-case, a registry's port allowed), tag, digest
_REFERENCE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9._/-]+)?"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$"
)


def interactive(yes: bool = False, as_json: bool = False) -> bool:
    """Ask questions only on a terminal and without ``--yes``/``--json``."""
    return not yes and not as_json and sys.stdin.isatty()


def allowed_text(settings: Settings) -> str:
    keys = [f"{key} ({entry.ref})" for key, entry in sorted(settings.catalogue.items())]
    extra = [f"images matching {p}" for p in settings.extra_allowed_bases]
    return ", ".join(keys + extra) or "none (ask an admin)"


def resolve_base(settings: Settings, base: str) -> tuple[str, str | None, CatalogueEntry | None]:
    """``base`` (a catalogue key or a reference) as (reference, catalogue key, entry), or
    :class:`Invalid` naming what is allowed."""
    base = base.strip()
    if base in settings.catalogue:
        entry = settings.catalogue[base]
        return entry.ref, base, entry
    if not base or any(c.isspace() for c in base) or not _REFERENCE.match(base):
        raise Invalid(
            f"{base!r} is neither a catalogue base nor an image reference: "
            f"choose one of {allowed_text(settings)}"
        )
    if not settings.base_allowed(base):
        raise Invalid(
            f"the base {base} is not allowed on this server: choose one of {allowed_text(settings)}"
        )
    for key, entry in settings.catalogue.items():
        if entry.ref == base:
            return base, key, entry
    repo = base.rsplit(":", 1)[0] if ":" in base.rsplit("/", 1)[-1] else base
    same_image = [(k, e) for k, e in settings.catalogue.items() if e.image == repo]
    if same_image:  # another tag of a catalogue image: its install commands still fit
        return base, None, same_image[0][1]
    return base, None, None


def entry_for(settings: Settings, key: str | None, base: str) -> CatalogueEntry | None:
    """The catalogue entry whose install commands a definition uses (None: the defaults)."""
    if key and key in settings.catalogue:
        return settings.catalogue[key]
    try:
        return resolve_base(settings, base)[2]
    except Invalid:
        return None


def choose_base(settings: Settings, console: Console) -> str:
    """Ask for a base: a numbered table of the catalogue; a number, a key or a reference."""
    keys = sorted(settings.catalogue)
    if keys:
        table = Table(title="Base images on this server")
        for column in ("#", "key", "image", "description"):
            table.add_column(column)
        for i, key in enumerate(keys, 1):
            entry = settings.catalogue[key]
            table.add_row(str(i), key, entry.ref, entry.description)
        console.print(table)
    default = settings.default_base if settings.default_base in keys else None
    hint = "a number, a key" + (" or an image reference" if settings.allowed_bases == "any" else "")
    while True:
        answer = Prompt.ask(f"Base ({hint})", default=default, console=console)
        answer = (answer or "").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            return keys[int(answer) - 1]
        try:
            resolve_base(settings, answer)
            return answer
        except Invalid as exc:
            console.print(f"[red]{exc.message}[/]", highlight=False)


def ask_packages(kind: str, console: Console) -> list[str]:
    """Ask for packages of one kind, space-separated (Enter: none)."""
    answer = Prompt.ask(
        f"{kind} packages (space-separated, Enter for none)", default="", console=console
    )
    return answer.split()
