"""ds01's benchmarks, run with ``tox -e bench`` or ``python -m benchmarks [NAME ...]``.

Convention: one module per subject, ``benchmarks/bench_<name>.py``, with a ``main() -> None``
that measures its candidates *and a baseline in the same run* and prints a ratio table with
:func:`report` (absolute timings differ from machine to machine; ratios much less so).
Benchmarks are never timed assertions in the test suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def best_of(fn: Callable[[], object], *, number: int = 1, repeat: int = 5) -> float:
    """The fastest of ``repeat`` timings of ``number`` calls, in seconds per call (the minimum
    is the least disturbed by the rest of the machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def report(title: str, baseline: str, timings: Mapping[str, float]) -> str:
    """Print (and return) a table of ``timings`` (seconds) with each one's ratio to
    ``timings[baseline]``."""
    base = timings[baseline]
    width = max(len(name) for name in timings)
    lines = [title, f"  {'':{width}}  {'time':>12}  {'ratio':>8}"]
    for name, seconds in timings.items():
        ratio = seconds / base if base > 0 else float("inf")
        mark = "  (baseline)" if name == baseline else ""
        lines.append(f"  {name:{width}}  {_human(seconds):>12}  {ratio:>7.2f}x{mark}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"
