"""Polling for something that is about to happen, with a deadline, instead of a fixed sleep.

A fixed sleep before an assertion is either too short (a loaded CI machine: a flaky failure) or
too long (every run pays it). ``wait_until`` returns as soon as the condition holds and fails
with a message naming what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "the condition",
    every: float = 0.02,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; raise
    AssertionError naming ``what`` once ``timeout`` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s (last: {value!r})")
        time.sleep(every)
