"""How a refused configuration is reported: each problem named by its path in the file.

``limits.groups.student.max_gpu_equivalents: expected a number, got 'two'`` — every problem of
a file is collected into one :class:`ConfigError`, so an admin fixes them all in one go.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ConfigProblem:
    """One thing wrong with the file, at ``path`` (``""``: the file as a whole)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration refused as a whole; ``problems`` lists every reason with its path."""

    def __init__(self, source: str | None, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        where = source or "<config>"
        lines = [f"{where}: {len(problems)} problem(s), configuration refused:"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


def join_path(path: str, key: object) -> str:
    """``path.key``, or ``key`` at the top of the file."""
    return f"{path}.{key}" if path else str(key)


def describe(value: Any) -> str:
    """A found value as a message shows it (``a mapping``, ``nothing (null)``, ``'two'``)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)
