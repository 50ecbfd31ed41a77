"""Cgroup files as values: read them, compare them with what they should hold, write the
difference.

A backend turns :class:`~ds01_cgroups.limits.AggregateLimits` into :data:`Settings`: a
mapping from ``(file, device)`` to the file's value in the form the kernel reads it back
(``-1``, ``max``, page-aligned bytes). Comparing two of them is how a cycle knows there is
nothing to write, and how ``ds01 admin cgroups check`` lists what differs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

#: ``(file relative to the user's cgroup, device "MAJ:MIN" or None)``; on v1 the file starts
#: with its controller (``memory/memory.limit_in_bytes``)
SettingKey = tuple[str, str | None]
Settings = dict[SettingKey, str]
#: writes one value to one cgroup file; injectable so tests can count or record writes
Writer = Callable[[Path, str], None]


def write_file(path: Path, text: str) -> None:
    """Write ``text`` with one ``write()`` call: the kernel takes one value (one device line)
    per write, and an error (EINVAL, EBUSY) comes back from that call."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_file(path: Path) -> str | None:
    """The file's text without surrounding white space, or None when it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def page_aligned(value: int) -> int:
    """Bytes rounded down to the page size, as the kernel stores memory limits."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    return value - value % page


@attrs.frozen
class Mismatch:
    """One file (and device) whose value differs from the configuration's."""

    file: str
    expected: str
    actual: str | None
    device: str | None = None

    def __str__(self) -> str:
        where = f"{self.file} [{self.device}]" if self.device else self.file
        actual = "missing" if self.actual is None else repr(self.actual)
        return f"{where}: expected {self.expected!r}, found {actual}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "file": self.file,
            "device": self.device,
            "expected": self.expected,
            "actual": self.actual,
        }


@attrs.define
class ApplyResult:
    """What one apply did: files written (path, text), problems, and notes for the log."""

    written: list[tuple[str, str]] = attrs.Factory(list)
    commands: list[list[str]] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)

    def extend(self, other: ApplyResult) -> None:
        self.written += other.written
        self.commands += other.commands
        self.errors += other.errors
        self.notes += other.notes


def mismatches(desired: Settings, current: Settings) -> list[Mismatch]:
    """Every desired value that ``current`` does not hold."""
    return [
        Mismatch(file, value, current.get((file, device)), device)
        for (file, device), value in desired.items()
        if current.get((file, device)) != value
    ]


def changed(desired: Settings, current: Settings) -> list[SettingKey]:
    """The keys to write, in ``desired``'s order (which backends choose deliberately)."""
    return [key for key, value in desired.items() if current.get(key) != value]


def write_setting(
    writer: Writer,
    path: Path,
    text: str,
    result: ApplyResult,
    *,
    retry: Callable[[], bool] | None = None,
) -> bool:
    """Write one value and record it; an error is recorded, not raised, so the other limits of
    the user still get written. ``retry`` may fix an EINVAL (and say so) before one more try."""
    try:
        writer(path, text)
    except OSError as exc:
        if exc.errno == errno.EINVAL and retry is not None and retry():
            return write_setting(writer, path, text, result)
        result.errors.append(f"cannot write {text!r} to {path}: {exc.strerror or exc}")
        return False
    result.written.append((str(path), text))
    return True


def subdirectories(path: Path) -> Iterable[Path]:
    """The child cgroups of ``path`` (none when it does not exist)."""
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []
