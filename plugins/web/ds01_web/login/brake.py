"""The brute-force brake: too many failed sign-ins for one user name or from one address in a
while, and further tries are refused (429) until the oldest of those failures is old enough.

Counted in memory (``ds01-web`` is one process): a restart forgets the count, which costs an
attacker a restart of a root service they cannot cause. Failures are counted whatever the
method (a wrong password, an unknown user, a refused account), so the count says nothing about
which names exist.
"""

from __future__ import annotations

import collections
import math
import threading


class Brake:
    """At most ``failures`` failures per key within ``window`` seconds."""

    def __init__(self, failures: int = 10, window: float = 15 * 60.0):
        self.failures = failures
        self.window = window
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        seen = self._seen.get(key)
        if seen is None:
            return collections.deque()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            del self._seen[key]
        return seen

    def wait(self, keys: list[str], now: float) -> int:
        """Seconds until any of ``keys`` may try again (0: now)."""
        longest = 0.0
        with self._lock:
            for key in keys:
                seen = self._recent(key, now)
                if len(seen) >= self.failures:
                    longest = max(longest, seen[-self.failures] + self.window - now)
        return math.ceil(longest) if longest > 0 else 0

    def failed(self, keys: list[str], now: float) -> None:
        """One more failure for each of ``keys``."""
        with self._lock:
            for key in keys:
                self._recent(key, now)
                self._seen.setdefault(key, collections.deque()).append(now)
            if len(self._seen) > 100_000:  # a flood of made-up names: forget the quiet ones
                for name in [k for k, d in self._seen.items() if d[-1] <= now - self.window]:
                    del self._seen[name]

    def forget(self, key: str) -> None:
        """A success: the user name starts afresh (its address keeps its count)."""
        with self._lock:
            self._seen.pop(key, None)


def keys_for(user: str, address: str) -> list[str]:
    return [f"user {user.strip().lower()}", f"address {address}"]


__all__ = ["Brake", "keys_for"]
