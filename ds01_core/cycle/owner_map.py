"""The GPU owner map: one file per GPU naming who holds it, so per-GPU metrics carry the user.

The layout is the one dcgm-exporter's ``--hpc-job-mapping-dir`` reads: one file per GPU (named
by index) or MIG instance (``<gpu>.<gpu-instance>``), whose line is the job holding it — here
``<user>/<container>``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ds01_core.domain.model import Allocation, GpuSlot


def owner_lines(slots: Sequence[GpuSlot], allocations: Sequence[Allocation]) -> dict[str, str]:
    """File name → content for every slot held by an allocation."""
    by_uuid = {s.uuid: s for s in slots}
    files: dict[str, list[str]] = {}
    for allocation in allocations:
        job = f"{allocation.user}/{allocation.container_name or allocation.container}"
        for uuid in allocation.slot_uuids:
            slot = by_uuid.get(uuid)
            if slot is not None:
                files.setdefault(slot.slot_id, []).append(job)
    return {name: "\n".join(jobs) + "\n" for name, jobs in files.items()}


def write_owner_map(
    directory: Path, slots: Sequence[GpuSlot], allocations: Sequence[Allocation]
) -> None:
    """Bring the directory in line: write changed files atomically, remove freed ones."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    wanted = owner_lines(slots, allocations)
    for entry in directory.iterdir():
        if entry.is_file() and entry.name not in wanted and not entry.name.startswith("."):
            entry.unlink()
    for name, content in wanted.items():
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == content:
                continue
        fd, tmp = tempfile.mkstemp(prefix=".", dir=directory)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
