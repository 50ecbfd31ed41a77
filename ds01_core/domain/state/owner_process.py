"""The process that vouches for a state row, named by its pid and kernel start time.

An allocation not yet bound to a container, and a ticket in the GPU queue, are kept only while
the process that made them runs. A pid alone could be reused by an unrelated process; the
pair (pid, start time in clock ticks since boot) never comes back.
"""

from __future__ import annotations


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (ticks since boot), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[-1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int | None, start: int | None) -> bool:
    """True while the very process that recorded (pid, start) runs (not a reused PID)."""
    return pid is not None and start is not None and process_start_ticks(pid) == start
