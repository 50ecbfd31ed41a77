"""The gateway's request bookkeeping (telemetry counters), against an empty function call.

Every request the gateway answers is counted (allowed, denied by reason, error) and every GPU
allocation timed into a histogram; this must cost well under a microsecond, alone and from
several threads at once (the gateway serves each connection in a thread).

    python -m benchmarks gateway_counting
"""

from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks import best_of, report
from ds01_core.framework.telemetry import ALLOCATION_SECONDS
from ds01_core.transports.gateway import outcomes

CALLS = 200_000


def _loop(fn: Any, *args: Any) -> None:
    for _ in range(CALLS):
        fn(*args)


def _threaded(fn: Any, threads: int = 4) -> float:
    """Seconds per call with ``threads`` threads calling at once."""
    workers = [threading.Thread(target=_loop, args=(fn,)) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - start) / (threads * CALLS)


def _empty() -> None:
    pass


def main() -> None:
    costs = {
        "empty call": best_of(lambda: _loop(_empty), repeat=3) / CALLS,
        "allowed()": best_of(lambda: _loop(outcomes.allowed), repeat=3) / CALLS,
        "denied(msg)": best_of(
            lambda: _loop(outcomes.denied, "container x belongs to another user"), repeat=3
        )
        / CALLS,
        "histogram.observe": best_of(lambda: _loop(ALLOCATION_SECONDS.observe, 0.02), repeat=3)
        / CALLS,
        "allowed(), 4 threads": _threaded(outcomes.allowed),
    }
    report("gateway bookkeeping per request", "empty call", costs)
    print(f"allowed() {costs['allowed()'] * 1e9:.0f} ns per request (target < 1 µs)")


if __name__ == "__main__":
    main()
