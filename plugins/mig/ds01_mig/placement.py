"""Where on the host a request goes: pack it onto busy GPUs, or spread it over idle ones.

Packing keeps whole GPUs (and whole MIG-mode GPUs) idle for the next big job; spreading keeps
jobs from sharing a GPU's power and memory bandwidth. Slots are chosen one at a time and each
choice counts as "in use" for the next, so a two-slot request spreads (or packs) as well.
Ties go to the lowest GPU index, then the lowest GPU-instance id, so a decision can be
repeated exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import attrs

from ds01_core.api import GpuSlot
from ds01_mig.config import Strategy
from ds01_mig.quota import EPSILON

RankKey = Callable[[GpuSlot], tuple[float, ...]]


@attrs.define
class HostState:
    """Per GPU: how many slots it has and how many of them are free right now."""

    total: Counter[int]
    free: Counter[int]

    @classmethod
    def of(cls, free_slots: Sequence[GpuSlot], all_slots: Sequence[GpuSlot]) -> HostState:
        every = {s.uuid: s for s in [*all_slots, *free_slots]}
        free = {s.uuid: s for s in free_slots}
        return cls(
            Counter(s.gpu_index for s in every.values()),
            Counter(s.gpu_index for s in free.values()),
        )

    def take(self, slot: GpuSlot) -> None:
        self.free[slot.gpu_index] -= 1

    def key(self, slot: GpuSlot, strategy: Strategy) -> tuple[int, ...]:
        """Placement order (lower first): ``pack`` prefers busy GPUs, then the GPU with the
        fewest free slots; ``spread`` prefers the GPU with the fewest slots in use."""
        gpu = slot.gpu_index
        free = self.free[gpu]
        used = self.total[gpu] - free
        tie = (gpu, slot.gpu_instance_id or 0, slot.compute_instance_id or 0)
        if strategy == "pack":
            return (int(used == 0), free, *tie)
        return (used, *tie)


def _completable(
    slot: GpuSlot, pool: Sequence[GpuSlot], left: int, budget: float | None, spent: float
) -> bool:
    """Can ``slot`` be taken and the remaining ``left`` slots still be found within budget?"""
    if budget is None:
        return True
    others = sorted(s.weight for s in pool if s.uuid != slot.uuid)[:left]
    return spent + slot.weight + sum(others) <= budget + EPSILON


def choose(
    candidates: Sequence[GpuSlot],
    count: int,
    state: HostState,
    strategy: Strategy,
    rank: RankKey,
    budget: float | None = None,
) -> list[GpuSlot] | None:
    """Pick ``count`` distinct slots from ``candidates``: best rank first, then placement.

    :param budget: GPU-equivalents the choice may cost in all (None: no limit). A preferred
        slot that would leave no affordable way to finish the request is passed over.
    :return: the slots, or None when ``count`` of them cannot be had within ``budget``.
    """
    pool = list({s.uuid: s for s in candidates}.values())
    chosen: list[GpuSlot] = []
    while len(chosen) < count:
        spent = sum(s.weight for s in chosen)
        left = count - len(chosen) - 1
        options = [s for s in pool if _completable(s, pool, left, budget, spent)]
        if len(pool) <= left or not options:
            return None
        best = min(options, key=lambda s: (rank(s), state.key(s, strategy), s.uuid))
        chosen.append(best)
        pool.remove(best)
        state.take(best)
    return chosen
