"""Shared output helpers: tables that fit the terminal, JSON, and error exits.

Every listing command offers ``--json``; tables are for people and may shorten long cells to fit
the terminal width, JSON never shortens anything.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from ds01_core.services.operations import to_json

#: ``--json`` for a listing command: the command gets ``as_json: bool``.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def dumps(data: Any) -> str:
    return to_json(data, indent=2, sort_keys=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON, the way every ``--json`` does (times in UTC with ``Z``,
    attrs classes as objects, a ``never`` time limit as the word)."""
    click.echo(dumps(data))


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def render_table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    width: int | None = None,
    shrinkable: Sequence[int] | None = None,
) -> str:
    """Columns padded to their widest cell; the ``shrinkable`` columns (default: the widest)
    are cut with an ellipsis until the table fits ``width``."""
    width = width or terminal_width()
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    gap = 2
    total = sum(widths) + gap * (len(widths) - 1)
    candidates = list(shrinkable) if shrinkable is not None else list(range(len(headers)))
    while total > width and candidates:
        i = max(candidates, key=lambda k: widths[k])
        floor = max(len(headers[i]), 6)
        if widths[i] <= floor:
            candidates.remove(i)
            continue
        cut = min(widths[i] - floor, total - width)
        widths[i] -= cut
        total -= cut

    def fit(text: str, w: int) -> str:
        return text if len(text) <= w else text[: max(w - 1, 0)] + "…"

    lines = ["  ".join(h.upper().ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append(
            "  ".join(fit(c, widths[i]).ljust(widths[i]) for i, c in enumerate(row)).rstrip()
        )
    return "\n".join(lines)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], **kw: Any) -> None:
    """Print ``rows`` under ``headers`` fitted to the terminal (see :func:`render_table` for
    ``width`` and ``shrinkable``), or ``(none)`` when there are no rows."""
    if not rows:
        click.echo("(none)")
        return
    click.echo(render_table(rows, headers, **kw))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``Error: message`` to stderr and exit with ``code`` (2 for usage/config errors)."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def with_progress(label: str, items: Sequence[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """Run ``fn`` over ``items`` with a progress bar on a terminal (stderr), quietly otherwise."""
    results = []
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        for item in bar:
            results.append(fn(item))
    return results
