"""Human-friendly durations (``30m``, ``1.5h``) and sizes (``32g``, ``512MiB``).

Admins write limits the way they think about them; these types parse that form once, at
config load, and print it back the same way, so a value shown by ``ds01 config show`` reads
like the value in the file. A time limit may also be ``never`` (:class:`TimeLimit`): "no
limit" said in so many words, never confused with a key left out.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.IGNORECASE)

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


class Duration(float):
    """A length of time in seconds, parsed from ``45``, ``45s``, ``30m``, ``1.5h``, ``2d``, ``1h30m``."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(f"expected a duration like '30m' or '1.5h', got {value!r}")
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"expected a duration like '30m' or '1.5h', got {value!r}")
            if value < 0:
                raise ValueError(f"a duration cannot be negative, got {value!r}")
            return cls(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a duration like '30m' or '1.5h', got {value!r}")
        if value.strip().lower() == "never":
            raise ValueError(
                "'never' is not allowed here: expected a duration like '30m' or '1.5h'"
            )
        match = _DURATION_RE.match(value)
        if match:
            number, unit = match.groups()
            return cls(float(number) * _DURATION_UNITS[(unit or "s").lower()])
        compact = value.replace(" ", "")
        parts = _DURATION_PART_RE.findall(compact)
        if parts and "".join(n + u for n, u in parts) == compact:
            return cls(sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts))
        raise ValueError(
            f"expected a duration like '45s', '30m', '1.5h', '2d' or '1h30m', got {value!r}"
        )

    def __str__(self) -> str:
        seconds = float(self)
        for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and (seconds / size) * 10 == int((seconds / size) * 10):
                return f"{seconds / size:g}{unit}"
        return f"{seconds:g}s"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class TimeLimit(Duration):
    """A duration limit (idle timeout, maximum runtime, …): a :class:`Duration`, or ``never``.

    ``never`` is infinity, so the stricter of two limits is simply ``min()``.
    """

    @classmethod
    def parse(cls, value: object) -> TimeLimit:
        if isinstance(value, str) and value.strip().lower() == "never":
            return NEVER
        if isinstance(value, float) and math.isinf(value):
            raise ValueError(f"expected a duration like '30m' or 'never', got {value!r}")
        return cls(Duration.parse(value))

    @property
    def is_never(self) -> bool:
        return math.isinf(self)

    def __str__(self) -> str:
        return "never" if self.is_never else super().__str__()

    def seconds(self) -> float | None:
        """Seconds, or None for never (how the lifecycle step reads "no limit")."""
        return None if self.is_never else float(self)


NEVER = TimeLimit(math.inf)


class ByteSize(int):
    """A number of bytes, parsed from ``1048576``, ``512m``, ``32g``, ``1.5GiB`` (powers of 1024)."""

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError(f"expected a size like '512m' or '32g', got {value!r}")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"a size cannot be negative, got {value!r}")
            return cls(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a size like '512m' or '32g', got {value!r}")
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"expected a size like '512m', '32g' or '1.5GiB', got {value!r}")
        number, unit, _suffix = match.groups()
        return cls(int(float(number) * _SIZE_UNITS[(unit or "").lower()]))

    def __str__(self) -> str:
        value = int(self)
        for unit, size in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
            if value >= size and value % (size // 1024 if size > 1024 else 1) == 0:
                scaled = value / size
                if scaled * 100 == int(scaled * 100):
                    return f"{scaled:g}{unit}"
        return str(value)

    def __repr__(self) -> str:
        return f"ByteSize({str(self)!r})"


def format_duration(seconds: float | None) -> str:
    """Short form for tables: ``4m12s``, ``2h05m``, ``3d04h``; ``-`` for None."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "never"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def format_bytes(value: int | None) -> str:
    """Short form for tables: ``40.0G``, ``512M``; ``-`` for None."""
    if value is None:
        return "-"
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value}B"
