"""Fixtures for the ds01-mig tests: the simulated DGX-A100's real slots, limits and holdings.

Session-scoped and side-effect free, so hypothesis tests may use them too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ds01_core.domain.gpu.simulated import SimulatedProvider
from ds01_core.domain.model import Allocation, EffectiveLimits, GpuSlot, LimitValue

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def slots() -> list[GpuSlot]:
    """GPUs 0-3 whole; 4: 7 x 1g.10gb; 5: 3g.40gb + 2 x 2g.20gb; 6: 2 x 3g.40gb;
    7: 4g.40gb + 2g.20gb + 1g.10gb."""
    provider = SimulatedProvider()
    try:
        return provider.slots()
    finally:
        provider.close()


@pytest.fixture(scope="session")
def slot(slots: list[GpuSlot]) -> Callable[[str], GpuSlot]:
    """``slot("5.3")``: a slot by its slot id."""
    by_id = {s.slot_id: s for s in slots}
    return by_id.__getitem__


@pytest.fixture(scope="session")
def limits() -> Callable[..., EffectiveLimits]:
    """``limits(max_gpu_equivalents=2.0, ...)``: effective limits for alice; keys left out
    have no limit."""

    def make(**values: Any) -> EffectiveLimits:
        return EffectiveLimits(
            "alice", "student", {k: LimitValue(v, "group student") for k, v in values.items()}
        )

    return make


@pytest.fixture(scope="session")
def alloc() -> Callable[..., Allocation]:
    """``alloc("ctr-a", slots, weight=None, stopped=False)``: one of alice's allocations."""
    serial = iter(range(1, 1_000_000))

    def make(
        name: str,
        held: Sequence[GpuSlot] = (),
        *,
        weight: float | None = None,
        stopped: bool = False,
    ) -> Allocation:
        return Allocation(
            id=next(serial),
            user="alice",
            container=f"id-{name}",
            slot_uuids=[s.uuid for s in held],
            weight=sum(s.weight for s in held) if weight is None else weight,
            allocated_at=NOW,
            container_name=name,
            stopped_at=NOW if stopped else None,
        )

    return make
