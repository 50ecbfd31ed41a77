"""GPU processes on the host, attributed to a user and, when inside one, to a container.

The GPU provider lists compute processes per leaf device (a GPU or a MIG instance); for each
PID one pass over ``/proc/<pid>/{status,cgroup,cmdline,stat}`` gives the real uid and the
container. A process must be seen in ``confirm_cycles`` consecutive cycles before it is
reported, so that short-lived probes (a ``torch.cuda.is_available()`` one-liner) make no noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs

from ds01_core.cycle.detection.procfs import PROC, ProcInfo, read_proc
from ds01_core.domain.model import GpuProcess, Workload
from ds01_core.domain.users import username_for_uid

ContainerLookup = Callable[[str], tuple[str, str, str] | None]


@attrs.define
class Sighting:
    start_ticks: int
    cycles: int


class ProcessDetector:
    """Host GPU processes as workloads; GPU processes in containers as container additions."""

    def __init__(
        self,
        *,
        confirm_cycles: int = 2,
        ignored_names: Iterable[str] = (),
        proc_root: Path = PROC,
    ):
        self.confirm_cycles = confirm_cycles
        self.ignored_names = set(ignored_names)
        self.proc_root = proc_root
        self.sightings: dict[int, Sighting] = {}

    def _confirmed(self, info: ProcInfo) -> bool:
        seen = self.sightings.get(info.pid)
        if seen is None or seen.start_ticks != info.start_ticks:  # new, or a reused PID
            seen = self.sightings[info.pid] = Sighting(info.start_ticks, 0)
        seen.cycles += 1
        return seen.cycles >= self.confirm_cycles

    def detect(
        self, processes: Sequence[GpuProcess], container_owner: ContainerLookup
    ) -> list[Workload]:
        slots_by_pid: dict[int, list[str]] = {}
        for proc in processes:
            slots_by_pid.setdefault(proc.pid, [])
            if proc.slot_uuid not in slots_by_pid[proc.pid]:
                slots_by_pid[proc.pid].append(proc.slot_uuid)
        workloads = []
        names: dict[int, str] = {}  # uid -> name, looked up once per cycle (NSS can be slow)
        for pid in sorted(slots_by_pid):
            info = read_proc(pid, self.proc_root)
            if info is None or info.comm in self.ignored_names:
                continue
            if not self._confirmed(info):
                continue
            if info.uid not in names:
                names[info.uid] = username_for_uid(info.uid) or f"uid:{info.uid}"
            workloads.append(
                self._workload(info, names[info.uid], slots_by_pid[pid], container_owner)
            )
        for gone in set(self.sightings) - set(slots_by_pid):
            del self.sightings[gone]
        return workloads

    @staticmethod
    def _workload(
        info: ProcInfo, user: str, slots: list[str], container_owner: ContainerLookup
    ) -> Workload:
        if info.container_id is not None:
            known = container_owner(info.container_id)
            owner, origin, _source = known if known else (user, "unknown", "")
            # a partial record: merged into the container detector's record for this id
            return Workload(
                kind="container",
                id=info.container_id,
                name=info.container_id[:12],
                origin=origin,  # type: ignore[arg-type]
                owner=owner,
                owner_source="container" if known else "process_uid",
                status="running",
                gpu_slots=list(slots),
                pids=[info.pid],
                cmdline=info.cmdline,
                flags=["partial"],
            )
        return Workload(
            kind="process",
            id=str(info.pid),
            name=info.comm,
            origin="host",
            owner=user,
            owner_source="process_uid",
            status="running",
            gpu_slots=list(slots),
            pids=[info.pid],
            cmdline=info.cmdline,
            flags=["unmanaged_gpu"],
        )
