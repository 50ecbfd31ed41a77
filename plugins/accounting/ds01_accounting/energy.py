"""Energy attribution: each GPU's energy counter, divided among the records that held it.

The rule (docs/accounting.md):

- A GPU's energy over an interval is the delta of its total-energy counter (NVML's
  ``nvmlDeviceGetTotalEnergyConsumption``, ``Gpu.energy_joules``) between two full cycles.
  A counter that went down (driver reload, GPU reset) or a GPU without one gives nothing for
  that interval; so does an interval longer than the gap the recorder trusts.
- Each holding (a record's slot, and the part ``f`` of the interval it was held) has the base
  share ``s x f``, where ``s`` is the slot's share of the GPU's compute slices (1 for a whole
  GPU). The holdings together get ``A = sum(s x f)`` of the energy; the rest
  (``1 - A``: unallocated slices, a GPU free for part of the interval) is *unattributed*, kept
  per GPU and hour, and billed to nobody.
- Within ``A``, when the utilisation of every holding's slot is known (whole GPUs: NVML; MIG:
  GPM) and not all zero, the holdings divide it in proportion to ``s x f x utilisation``: a
  busy instance draws more than an idle one beside it. Otherwise in proportion to ``s x f``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs

from ds01_core.api import Gpu

log = logging.getLogger(__name__)


@attrs.frozen
class Holding:
    """``key`` (a record's allocation id) held slot ``slot`` for the part ``fraction`` of the
    interval."""

    key: int
    slot: str
    fraction: float


@attrs.frozen
class Counter:
    """A GPU's energy counter as last read: joules, at (Unix seconds)."""

    joules: float
    at: float


def delta(
    gpu: Gpu, previous: Counter | None, now: float, max_gap: float
) -> tuple[float, float] | None:
    """``(joules, interval start)`` since ``previous``, or None when nothing can be billed:
    no counter, no previous reading, a reset (the counter went down) or a gap too long."""
    if gpu.energy_joules is None or previous is None:
        return None
    joules = gpu.energy_joules - previous.joules
    if joules < 0:
        log.info(
            "GPU %d: energy counter went down (%.0f J -> %.0f J, a driver reload or reset): "
            "this interval is not billed",
            gpu.index,
            previous.joules,
            gpu.energy_joules,
        )
        return None
    if now <= previous.at or now - previous.at > max_gap:
        return None
    return joules, previous.at


def attribute(
    gpu: Gpu, joules: float, holdings: Sequence[Holding]
) -> tuple[dict[int, float], float]:
    """Divide ``joules`` of ``gpu`` among ``holdings``: ``({key: joules}, unattributed)``."""
    slots = {slot.uuid: slot for slot in gpu.slots}
    total = gpu.total_slices or 1
    bases: list[tuple[Holding, float, float | None]] = []
    for holding in holdings:
        slot = slots.get(holding.slot)
        if slot is None:
            continue
        share = 1.0 if not gpu.mig_enabled else slot.compute_slices / total
        fraction = min(max(holding.fraction, 0.0), 1.0)
        bases.append((holding, share * fraction, slot.utilization))
    allocated = min(sum(base for _, base, _ in bases), 1.0)
    weighted = [base * util for _, base, util in bases if util is not None]
    use_activity = len(weighted) == len(bases) and sum(weighted) > 0
    denominator = sum(weighted) if use_activity else sum(base for _, base, _ in bases)
    out: dict[int, float] = {}
    if denominator > 0:
        for holding, base, util in bases:
            part = base * (util or 0.0) if use_activity else base
            out[holding.key] = out.get(holding.key, 0.0) + joules * allocated * part / denominator
    return out, joules * (1.0 - allocated) if denominator > 0 else joules


def co2_grams(joules: float, grams_per_kwh: float | None) -> float | None:
    """CO2 for ``joules`` at an intensity in g/kWh (None when the intensity is unknown)."""
    if grams_per_kwh is None:
        return None
    return joules / 3.6e6 * grams_per_kwh
