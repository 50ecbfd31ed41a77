"""Allocating GPUs with a wait: at once, or from the GPU queue once the waiter is at its head.

It joins the allocation records (:mod:`ds01_core.domain.state.allocations`) and the wait queue
(:mod:`ds01_core.domain.state.gpu_queue`); neither of those needs the other's whole story.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations, Granted
from ds01_core.domain.state.gpu_queue import Waiter, wake_head

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def allocate_waiting(runtime: Runtime, request: GpuRequest, timeout: float | None) -> Granted:
    """Allocate now, or (``timeout`` not None) queue and wait up to ``timeout`` seconds."""
    allocations = Allocations(runtime)
    if timeout is None:
        return allocations.allocate(request)
    deadline = time.monotonic() + timeout
    waiter = Waiter(runtime, request)
    recheck = float(runtime.config.allocation.queue_recheck)
    last_reason = "no free GPU slot"
    outcome = "timeout"
    try:
        while True:
            try:
                granted = allocations.allocate(request, ticket=waiter.ticket)
                outcome = "served"
                return granted
            except AllocationRefused as refused:
                last_reason = str(refused)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AllocationRefused(
                    f"{last_reason} (waited {timeout:g}s in the GPU queue; try again later)"
                )
            waiter.wait(min(recheck, remaining))
    finally:
        waiter.leave(outcome)
        if outcome == "served":
            wake_head(runtime)  # the next one may fit in what is still free
