"""What ``ds01 setup`` and ``ds01 doctor`` found, one line each: ✓ fine, ! worth doing, ✗ broken.

Both commands print the same shape (and the same JSON), so that a user who ran ``ds01 setup``
reads ``ds01 doctor`` without learning a second format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: ("✓", "green"), WARN: ("!", "yellow"), FAIL: ("✗", "red")}


@attrs.frozen
class Finding:
    """One check's outcome: what was seen, and what to do about it when it is not fine."""

    #: the step or check it belongs to (``account``, ``docker``, ``ssh`` …)
    check: str
    status: str
    #: one line: what was found
    message: str
    #: what to do (a command when there is one); empty when nothing is to be done
    fix: str = ""
    #: further lines shown under the message (a list of images, the quota in words …)
    details: tuple[str, ...] = ()
    #: what the command changed to get here (a file written, a key added)
    changed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "message": self.message,
            "fix": self.fix or None,
            "details": list(self.details),
            "changed": list(self.changed),
        }


def ok(check: str, message: str, **kw: Any) -> Finding:
    return Finding(check, OK, message, **kw)


def warn(check: str, message: str, fix: str = "", **kw: Any) -> Finding:
    return Finding(check, WARN, message, fix, **kw)


def fail(check: str, message: str, fix: str = "", **kw: Any) -> Finding:
    return Finding(check, FAIL, message, fix, **kw)


def problems(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that are broken (✗)."""
    return [f for f in findings if f.status == FAIL]


def render(findings: Sequence[Finding], console: Any = None) -> None:
    """Print each finding as ``✓ check  message`` with its details, changes and fix below."""
    from rich.console import Console
    from rich.markup import escape

    out = console or Console(highlight=False, soft_wrap=True)
    for f in findings:
        mark, colour = MARKS[f.status]
        out.print(f"[{colour}]{mark}[/{colour}] [bold]{f.check:<10}[/bold] {escape(f.message)}")
        for line in f.details:
            out.print(f"    {escape(line)}")
        for line in f.changed:
            out.print(f"    [cyan]changed:[/cyan] {escape(line)}")
        if f.fix:
            out.print(f"    [bold]→[/bold] {escape(f.fix)}")


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """How many of each status."""
    return {s: sum(1 for f in findings if f.status == s) for s in (OK, WARN, FAIL)}
