"""The processes file: extra GPU processes on the simulated host, re-read when it changes.

A YAML or JSON list of ``{pid, slot, used_memory}``; tests and demos write it to make real host
PIDs appear as GPU processes while ds01 runs. A missing file means no extra process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ds01_core.domain.config import ConfigProblem, structure_section
from ds01_core.domain.gpu.simulated.host import SimHost, SimProcess
from ds01_core.domain.gpu.simulated.topology import SimulatedTopologyError, read_data
from ds01_core.domain.units import ByteSize


@attrs.define
class ProcessEntry:
    """One line of a processes file: a PID on a slot (UUID, legacy MIG UUID or slot id)."""

    pid: int
    slot: str
    used_memory: ByteSize | None = None


# -- the processes file -------------------------------------------------------------------------


class ProcessesFile:
    """Extra GPU processes read from a file on every call; a missing file means none."""

    def __init__(self, path: str | Path, host: SimHost):
        self.path = Path(path).expanduser()
        self.host = host
        self._cache: tuple[tuple[int, int, int], list[tuple[str, SimProcess]]] | None = None

    def __call__(self) -> list[tuple[str, SimProcess]]:
        """The file's processes; parsed again only when the file changed (it is consulted on
        every process listing, like the driver would be)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == key:
            return list(self._cache[1])
        found = self._parse()
        self._cache = (key, found)
        return list(found)

    def _parse(self) -> list[tuple[str, SimProcess]]:
        data = read_data(self.path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise SimulatedTopologyError(
                str(self.path), [ConfigProblem("", "expected a list of {pid, slot, used_memory}")]
            )
        found, problems = [], []
        for index, raw in enumerate(data):
            entry, more = self._entry(index, raw)
            problems += more
            if entry is not None:
                found.append(entry)
        if problems:
            raise SimulatedTopologyError(str(self.path), problems)
        return found

    def _entry(
        self, index: int, raw: Any
    ) -> tuple[tuple[str, SimProcess] | None, list[ConfigProblem]]:
        path = f"[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("slot"), int | float):
            raw = {**raw, "slot": str(raw["slot"])}  # YAML reads slot 5.1 as a number
        entry, problems = structure_section(raw, ProcessEntry, path)
        if entry is None:
            return None, problems
        if entry.pid <= 0:
            return None, [ConfigProblem(f"{path}.pid", "must be positive")]
        leaf = self.host.find_leaf(entry.slot)
        if leaf is None:
            return None, [ConfigProblem(f"{path}.slot", _unknown_slot(entry.slot, self.host))]
        used = int(entry.used_memory) if entry.used_memory is not None else None
        return (leaf, SimProcess(entry.pid, used)), []


def _unknown_slot(ref: str, host: SimHost) -> str:
    ids = []
    for gpu in host.gpus:
        if gpu.instances is None:
            ids.append(str(gpu.index))
        else:
            ids += [i.slot_id(gpu.index) for i in gpu.instances]
    return f"no slot {ref!r} on the simulated host (slots: {', '.join(ids)}, or a UUID)"
