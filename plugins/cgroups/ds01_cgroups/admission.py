"""Refuse a container whose memory would push its owner's reservations past ``memory_max``.

The aggregate counted is the sum of the per-container ``Memory`` limits of the containers in
the user's cgroup that are created, running, restarting or paused, plus the new one's. It is
not the cgroup's current usage: usage moves with time, so admitting by it would let a user
start containers that are bound to be OOM-killed together later, and two identical requests
could get different answers a minute apart. Reservations are exact, explainable ("a 16G,
b 24G") and the same every time. A container with no memory limit of its own reserves nothing
(the kernel's ``memory_max`` on the cgroup still caps it with the others), and only
containers in the user's cgroup count, because only they share that limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ds01_cgroups.inventory import Member
from ds01_core.api import format_bytes


def memory_refusal(memory_max: int, members: Sequence[Member], asked: int) -> str | None:
    """The reason to refuse, or None when ``asked`` fits beside what ``members`` reserve."""
    if asked <= 0:
        return None
    holding = [m for m in members if m.memory > 0]
    reserved = sum(m.memory for m in holding)
    if reserved + asked <= memory_max:
        return None
    listed = ", ".join(f"{m.name} {format_bytes(m.memory)}" for m in holding) or "none"
    return (
        f"memory: {format_bytes(reserved)} of {format_bytes(memory_max)} (memory_max) reserved "
        f"by your containers ({listed}); this one asks {format_bytes(asked)}. "
        "Stop or remove a container, or ask for less memory."
    )
