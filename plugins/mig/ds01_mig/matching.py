"""What a request asks for: which slots can serve it, how to name it, and why none can.

A request is one of three shapes: ``mig_profile`` (N slots of exactly that profile),
``full_gpu`` (N whole GPUs), or a plain count (N slots of any kind, chosen by preference).
``min_memory`` narrows any of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import attrs

from ds01_core.api import GpuRequest, GpuSlot, format_bytes
from ds01_mig.config import Prefer
from ds01_mig.placement import RankKey
from ds01_mig.quota import EPSILON, fmt_ge


def invalid_request(request: GpuRequest) -> str | None:
    """A request that cannot mean anything (the CLI prevents these; the gateway may not)."""
    if request.count < 1:
        return f"a GPU request needs at least 1 slot, got {request.count}"
    if request.mig_profile is not None and request.full_gpu:
        return f"ask for either a MIG profile ({request.mig_profile}) or full GPUs, not both"
    return None


def profiles(slots: Iterable[GpuSlot]) -> list[str]:
    """The MIG profiles among ``slots``, smallest first (by weight, then name)."""
    weights = {s.profile: s.weight for s in slots if s.kind == "mig" and s.profile}
    return sorted(weights, key=lambda p: (weights[p], p))


def unknown_profile(request: GpuRequest, all_slots: Sequence[GpuSlot]) -> str | None:
    """A profile no slot on the host has, refused with the profiles the host does have."""
    wanted = request.mig_profile
    if wanted is None or any(s.profile == wanted for s in all_slots):
        return None
    known = profiles(all_slots)
    if not known:
        return f"unknown MIG profile {wanted!r}: this host has no MIG slots; ask for full GPUs"
    return f"unknown MIG profile {wanted!r}: this host has {', '.join(known)}"


def matches(slot: GpuSlot, request: GpuRequest, *, whole_ok: bool) -> bool:
    """True when ``slot`` can be one of the request's slots.

    :param whole_ok: whether a plain count request may take whole GPUs.
    """
    if request.min_memory is not None and slot.memory_total < request.min_memory:
        return False
    if request.mig_profile is not None:
        return slot.kind == "mig" and slot.profile == request.mig_profile
    if request.full_gpu:
        return slot.kind == "gpu"
    return whole_ok or slot.kind == "mig"


def rank(request: GpuRequest, prefer: Prefer, *, full_allowed: bool) -> RankKey:
    """Preference order among matching slots (lower first); placement breaks the ties.

    A profile or full-GPU request has one kind of slot, so all rank equal. A plain count
    takes the smallest MIG slices first (``prefer: mig``) or whole GPUs, then the largest
    slices (``prefer: full``). Whole GPUs a user may not have (granted only in soft mode)
    come after every MIG slice either way.
    """
    if request.mig_profile is not None or request.full_gpu:
        return lambda slot: ()

    def key(slot: GpuSlot) -> tuple[float, ...]:
        whole = slot.kind == "gpu"
        discouraged = float(whole and not full_allowed)
        if prefer == "mig":
            return (discouraged, float(whole), slot.weight)
        return (discouraged, float(not whole), -slot.weight)

    return key


def cheapest(slots: Sequence[GpuSlot], count: int) -> float:
    """The fewest GPU-equivalents ``count`` of ``slots`` can cost."""
    return sum(sorted(s.weight for s in slots)[:count])


# -- naming -------------------------------------------------------------------------------------


def _kind(request: GpuRequest, *, mig_only: bool = False) -> tuple[str, str]:
    """The request's slot kind, singular and plural: ``3g.40gb slot``, ``full GPUs``.

    :param mig_only: a plain count that may not take whole GPUs asks for MIG slots.
    """
    if request.mig_profile is not None:
        return f"{request.mig_profile} slot", f"{request.mig_profile} slots"
    if request.full_gpu:
        return "full GPU", "full GPUs"
    if mig_only:
        return "MIG slot", "MIG slots"
    return "GPU slot", "GPU slots"


def _memory_clause(request: GpuRequest) -> str:
    if request.min_memory is None:
        return ""
    return f" with at least {format_bytes(request.min_memory)} of memory"


def _slot_name(slot: GpuSlot) -> str:
    return "full GPU" if slot.kind == "gpu" else slot.profile or "MIG slot"


def needs_exactly(slots: Sequence[GpuSlot]) -> str:
    """``a 3g.40gb needs 0.43``, ``2 full GPUs need 2.0``, ``1g.10gb + 2g.20gb need 0.43``."""
    need = fmt_ge(sum(s.weight for s in slots))
    names = Counter(_slot_name(s) for s in slots)
    if len(slots) == 1:
        return f"a {_slot_name(slots[0])} needs {need}"
    if len(names) == 1:
        name = next(iter(names))
        plural = "full GPUs" if name == "full GPU" else f"{name} slots"
        return f"{len(slots)} {plural} need {need}"
    return f"{' + '.join(sorted(names.elements()))} need {need}"


def needs_at_least(request: GpuRequest, need: float) -> str:
    """``2 slots need at least 0.29``: a plain count, costed at its cheapest choice."""
    if request.count == 1:
        return f"a slot needs at least {fmt_ge(need)}"
    return f"{request.count} slots need at least {fmt_ge(need)}"


def needs(request: GpuRequest, matching: Sequence[GpuSlot], need: float) -> str:
    """How a request is named in a quota refusal, from the slots that could serve it."""
    if request.mig_profile is not None or request.full_gpu:
        cheapest_slots = sorted(matching, key=lambda s: s.weight)[: request.count]
        return needs_exactly(cheapest_slots)
    return needs_at_least(request, need)


# -- when no slot can serve ---------------------------------------------------------------------


def not_on_host(request: GpuRequest, all_slots: Sequence[GpuSlot], matching: int) -> str:
    """The host itself cannot serve the request (too little memory, no such slots)."""
    singular, plural = _kind(request)
    memory = _memory_clause(request)
    if matching == 0 and request.min_memory is not None:
        any_size = attrs.evolve(request, min_memory=None)
        sizes = [s.memory_total for s in all_slots if matches(s, any_size, whole_ok=True)]
        largest = f" (the largest has {format_bytes(max(sizes))})" if sizes else ""
        return (
            f"no {singular} on this host has at least {format_bytes(request.min_memory)} of "
            f"memory{largest}"
        )
    known = profiles(all_slots)
    if matching == 0 and request.full_gpu and known:
        return (
            "this host has no full GPUs (all are split into MIG slots); "
            f"ask for a MIG profile: {', '.join(known)}"
        )
    if matching == 0:
        return f"this host has no {plural}{memory}"
    have = plural if matching != 1 else singular
    return f"this host has only {matching} {have}{memory}, {request.count} requested"


def unavailable(
    request: GpuRequest,
    matching: int,
    free: int,
    alternatives: Sequence[GpuSlot],
    *,
    mig_only: bool = False,
) -> str:
    """``no free 3g.40gb slot: 0 of 4 free (held by other containers)``, plus what to do.

    :param alternatives: free slots of other kinds the user could ask for instead.
    :param mig_only: a plain count that may not take whole GPUs.
    """
    singular, plural = _kind(request, mig_only=mig_only)
    memory = _memory_clause(request)
    if free == 0:
        head = f"no free {singular}{memory}: 0 of {matching} free (held by other containers)"
    else:
        head = (
            f"not enough free {plural}{memory}: {free} of {matching} free, "
            f"{request.count} requested"
        )
    counts = Counter(_slot_name(s) for s in alternatives)
    wanted = request.mig_profile or ("full GPU" if request.full_gpu else None)
    offers = [f"{name} ({n})" for name, n in sorted(counts.items()) if name != wanted]
    if wanted is None or not offers:
        return f"{head}; add --wait to queue for one"
    return f"{head}; add --wait to queue for one, or ask for what is free: {', '.join(offers)}"


def example_profile(
    free_slots: Sequence[GpuSlot], all_slots: Sequence[GpuSlot], budget: float | None
) -> str | None:
    """A MIG profile worth suggesting: the largest free one within ``budget``, else the
    smallest on the host; None when the host has no MIG slots."""
    fitting = [
        s
        for s in free_slots
        if s.kind == "mig" and (budget is None or s.weight <= budget + EPSILON)
    ]
    if fitting:
        return profiles(fitting)[-1]
    known = profiles(all_slots)
    return known[0] if known else None
