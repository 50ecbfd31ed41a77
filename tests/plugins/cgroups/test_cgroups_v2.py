"""cgroup v2: controllers enabled on the way down, the exact files written, io.max lines,
nothing written when nothing changed, resets and check."""

from __future__ import annotations

from pathlib import Path

from cgroups_helpers import Recorder

from ds01_cgroups.devices import BlockDevice
from ds01_cgroups.limits import AggregateLimits, DeviceIO
from ds01_cgroups.naming import user_cgroup
from ds01_cgroups.v2 import V2Cgroups

ALICE = user_cgroup("ds01", "lab", "alice", "cgroupfs", default_group="default")
LOOP = BlockDevice(7, 0, "loop0")
SDA = BlockDevice(8, 0, "sda")
MiB = 1024 * 1024


def limits(**kw: object) -> AggregateLimits:
    base: dict[str, object] = {
        "cpu_quota": 1.5,
        "memory_max": 48 * MiB,
        "memory_high": 40 * MiB,
        "tasks_max": 20,
        "io": (DeviceIO(LOOP, rbps=4 * MiB, wbps=2 * MiB, wiops=120), DeviceIO(SDA, riops=500)),
    }
    base.update(kw)
    return AggregateLimits(**base)  # type: ignore[arg-type]


def test_first_apply_enables_controllers_and_writes_the_limits(
    v2_root: Path, recorder: Recorder
) -> None:
    result = V2Cgroups(str(v2_root), write=recorder.write).apply(ALICE, limits())
    assert result.errors == []
    user = v2_root / "ds01/lab/alice"
    assert recorder.writes == [
        (f"{v2_root}/cgroup.subtree_control", "+io +memory +pids"),
        (f"{v2_root}/ds01/cgroup.subtree_control", "+cpu +io +memory +pids"),
        (f"{v2_root}/ds01/lab/cgroup.subtree_control", "+cpu +io +memory +pids"),
        (f"{user}/cpu.max", "150000 100000"),
        (f"{user}/memory.max", "50331648"),
        (f"{user}/memory.high", "41943040"),
        (f"{user}/pids.max", "20"),
        (f"{user}/io.max", "7:0 rbps=4194304 wbps=2097152 riops=max wiops=120"),
        (f"{user}/io.max", "8:0 rbps=max wbps=max riops=500 wiops=max"),
    ]
    assert (user / "cpu.max").read_text() == "150000 100000"
    assert (user / "io.max").read_text() == (
        "7:0 rbps=4194304 wbps=2097152 riops=max wiops=120\n"
        "8:0 rbps=max wbps=max riops=500 wiops=max\n"
    )
    assert (v2_root / "cgroup.subtree_control").read_text() == "cpu cpuset io memory pids\n"
    assert (user / "memory.high").read_text() == "41943040"


def test_no_change_writes_nothing_even_after_a_restart(v2_root: Path, recorder: Recorder) -> None:
    backend = V2Cgroups(str(v2_root), write=recorder.write)
    backend.apply(ALICE, limits())
    files = [p for p in v2_root.rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    recorder.writes.clear()
    backend.apply(ALICE, limits())
    V2Cgroups(str(v2_root), write=recorder.write).apply(ALICE, limits())
    assert recorder.writes == []
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_changes_and_resets(v2_root: Path, recorder: Recorder) -> None:
    backend = V2Cgroups(str(v2_root), write=recorder.write)
    backend.apply(ALICE, limits())
    recorder.writes.clear()
    backend.apply(
        ALICE, limits(cpu_quota=None, io=(DeviceIO(LOOP, rbps=4 * MiB, wbps=2 * MiB, wiops=120),))
    )
    user = v2_root / "ds01/lab/alice"
    assert recorder.writes == [
        (f"{user}/cpu.max", "max 100000"),
        (f"{user}/io.max", "8:0 rbps=max wbps=max riops=max wiops=max"),
    ]


def test_check(v2_root: Path, recorder: Recorder) -> None:
    backend = V2Cgroups(str(v2_root), write=recorder.write)
    assert backend.check(ALICE, AggregateLimits()) == []  # no limits, no cgroup: fine
    backend.apply(ALICE, limits(io=()))
    assert backend.check(ALICE, limits(io=())) == []
    (v2_root / "ds01/lab/alice/memory.max").write_text("max\n")
    (v2_root / "ds01/lab/alice/io.max").write_text("8:0 rbps=1 wbps=max riops=max wiops=max\n")
    assert [str(m) for m in backend.check(ALICE, limits(io=()))] == [
        f"{v2_root}/ds01/lab/alice/memory.max: expected '50331648', found 'max'",
        f"{v2_root}/ds01/lab/alice/io.max [8:0]: expected 'rbps=max wbps=max riops=max wiops=max', "
        "found 'rbps=1 wbps=max riops=max wiops=max'",
    ]
