"""cgroup v1: the exact files written, nothing written when nothing changed, resets, the
CPU-quota EINVAL rule and the per-container IO limits (v1 throttling is flat)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cgroups_helpers import Recorder

from ds01_cgroups.devices import BlockDevice
from ds01_cgroups.limits import AggregateLimits, DeviceIO
from ds01_cgroups.naming import user_cgroup
from ds01_cgroups.v1 import V1Cgroups

ALICE = user_cgroup("ds01", None, "alice", "cgroupfs", default_group="default")
LOOP = BlockDevice(7, 0, "loop0")
MiB = 1024 * 1024


def limits(**kw: object) -> AggregateLimits:
    base: dict[str, object] = {
        "cpu_quota": 0.2,
        "memory_max": 48 * MiB,
        "memory_high": 40 * MiB,
        "tasks_max": 20,
        "io": (DeviceIO(LOOP, wbps=2 * MiB, riops=100),),
    }
    base.update(kw)
    return AggregateLimits(**base)  # type: ignore[arg-type]


def read(root: Path, controller: str, name: str) -> str:
    return (root / controller / "ds01/default/alice" / name).read_text()


def test_first_apply_writes_exactly_the_limits(v1_root: Path, recorder: Recorder) -> None:
    result = V1Cgroups(str(v1_root), write=recorder.write).apply(ALICE, limits())
    assert not result.errors
    user = "ds01/default/alice"
    assert recorder.writes == [
        (f"{v1_root}/cpu/{user}/cpu.cfs_quota_us", "20000"),
        (f"{v1_root}/memory/{user}/memory.limit_in_bytes", str(48 * MiB)),
        (f"{v1_root}/pids/{user}/pids.max", "20"),
        (f"{v1_root}/blkio/{user}/blkio.throttle.write_bps_device", "7:0 2097152"),
        (f"{v1_root}/blkio/{user}/blkio.throttle.read_iops_device", "7:0 100"),
    ]
    assert read(v1_root, "cpu", "cpu.cfs_quota_us") == "20000"
    assert read(v1_root, "memory", "memory.limit_in_bytes") == "50331648"
    assert read(v1_root, "pids", "pids.max") == "20"
    assert read(v1_root, "blkio", "blkio.throttle.write_bps_device") == "7:0 2097152\n"
    # a new cgroup already holds the defaults: the period and unlimited files are not written
    assert not (v1_root / "cpu" / user / "cpu.cfs_period_us").exists()
    assert not (v1_root / "blkio" / user / "blkio.throttle.read_bps_device").exists()
    # memory.high has no v1 file
    assert not list((v1_root / "memory" / user).glob("memory.high"))


def test_a_cycle_with_no_change_writes_nothing(v1_root: Path, recorder: Recorder) -> None:
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    backend.apply(ALICE, limits())
    files = sorted(p for p in v1_root.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    recorder.writes.clear()
    for _ in range(3):
        result = backend.apply(ALICE, limits())
        assert result.written == [] and result.errors == []
    assert recorder.writes == []
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_a_restarted_daemon_reads_the_files_and_still_writes_nothing(
    v1_root: Path, recorder: Recorder
) -> None:
    V1Cgroups(str(v1_root), write=recorder.write).apply(ALICE, limits())
    recorder.writes.clear()
    again = V1Cgroups(str(v1_root), write=recorder.write)  # no memory of the first
    assert again.apply(ALICE, limits()).written == []
    assert recorder.writes == []


def test_a_change_writes_only_the_changed_file(v1_root: Path, recorder: Recorder) -> None:
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    backend.apply(ALICE, limits())
    recorder.writes.clear()
    backend.apply(ALICE, limits(memory_max=64 * MiB))
    assert recorder.writes == [
        (f"{v1_root}/memory/ds01/default/alice/memory.limit_in_bytes", str(64 * MiB))
    ]


def test_removed_limits_are_reset(v1_root: Path, recorder: Recorder) -> None:
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    backend.apply(ALICE, limits())
    recorder.writes.clear()
    backend.apply(ALICE, AggregateLimits())
    user = f"{v1_root}/%s/ds01/default/alice"
    assert recorder.writes == [
        (f"{user % 'cpu'}/cpu.cfs_quota_us", "-1"),
        (f"{user % 'memory'}/memory.limit_in_bytes", "-1"),
        (f"{user % 'pids'}/pids.max", "max"),
        (f"{user % 'blkio'}/blkio.throttle.write_bps_device", "7:0 0"),
        (f"{user % 'blkio'}/blkio.throttle.read_iops_device", "7:0 0"),
    ]


def test_the_kernels_unlimited_memory_reads_as_no_limit(v1_root: Path, recorder: Recorder) -> None:
    user_dir = v1_root / "memory" / "ds01/default/alice"
    user_dir.mkdir(parents=True)
    (user_dir / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    for controller in ("cpu", "pids"):
        (v1_root / controller / "ds01/default/alice").mkdir(parents=True)
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    backend.apply(ALICE, AggregateLimits(cpu_quota=1.0))
    assert [p.rsplit("/", 1)[1] for p, _ in recorder.writes] == ["cpu.cfs_quota_us"]


def test_no_limits_and_no_cgroup_creates_nothing(v1_root: Path, recorder: Recorder) -> None:
    V1Cgroups(str(v1_root), write=recorder.write).apply(ALICE, AggregateLimits())
    assert recorder.writes == []
    assert not (v1_root / "cpu" / "ds01").exists()


def test_a_lower_quota_first_lowers_containers_above_it(v1_root: Path) -> None:
    """v1 refuses a parent quota below a child's (EINVAL); the children are lowered first."""
    user_cpu = v1_root / "cpu" / "ds01/default/alice"
    child = user_cpu / "c0ffee"
    child.mkdir(parents=True)
    (child / "cpu.cfs_quota_us").write_text("100000\n")
    (child / "cpu.cfs_period_us").write_text("100000\n")
    (user_cpu / "cpu.cfs_quota_us").write_text("-1\n")
    written: list[tuple[str, str]] = []

    def kernel_like(path: Path, text: str) -> None:
        if path == user_cpu / "cpu.cfs_quota_us" and int(text) > 0:
            child_share = int((child / "cpu.cfs_quota_us").read_text())
            if child_share > int(text):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        written.append((str(path), text))
        path.write_text(text)

    result = V1Cgroups(str(v1_root), write=kernel_like).apply(ALICE, AggregateLimits(cpu_quota=0.5))
    assert result.errors == []
    assert written == [
        (str(child / "cpu.cfs_quota_us"), "50000"),
        (str(user_cpu / "cpu.cfs_quota_us"), "50000"),
    ]
    assert result.notes == ["lowered c0ffee's CPU quota to 50000/100000"]


def test_an_error_is_reported_and_retried_next_cycle(v1_root: Path) -> None:
    attempts: list[str] = []

    def busy(path: Path, text: str) -> None:
        attempts.append(path.name)
        if path.name == "memory.limit_in_bytes":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        path.write_text(text)

    backend = V1Cgroups(str(v1_root), write=busy)
    first = backend.apply(ALICE, AggregateLimits(memory_max=MiB, tasks_max=5))
    assert len(first.errors) == 1 and "Device or resource busy" in first.errors[0]
    assert "memory.limit_in_bytes" in first.errors[0]
    attempts.clear()
    backend.apply(ALICE, AggregateLimits(memory_max=MiB, tasks_max=5))
    assert attempts == ["memory.limit_in_bytes"]  # pids.max already holds its value


def test_io_limits_go_on_each_container_below_the_user(v1_root: Path, recorder: Recorder) -> None:
    """v1 blkio throttling is flat: the user's limit is copied to its container cgroups."""
    user_blkio = v1_root / "blkio" / "ds01/default/alice"
    (user_blkio / "aaa").mkdir(parents=True)
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    backend.apply(ALICE, limits())
    assert (user_blkio / "aaa" / "blkio.throttle.write_bps_device").read_text() == "7:0 2097152\n"
    assert (user_blkio / "aaa" / "blkio.throttle.read_iops_device").read_text() == "7:0 100\n"
    recorder.writes.clear()
    backend.apply(ALICE, limits())
    assert recorder.writes == []  # known children are not written again
    (user_blkio / "bbb").mkdir()
    backend.apply(ALICE, limits())
    assert [p for p, _ in recorder.writes] == [
        str(user_blkio / "bbb" / "blkio.throttle.write_bps_device"),
        str(user_blkio / "bbb" / "blkio.throttle.read_iops_device"),
    ]


def test_check_lists_each_differing_file(v1_root: Path, recorder: Recorder) -> None:
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    assert [str(m) for m in backend.check(ALICE, limits())] == [
        f"{v1_root}/*/ds01/default/alice: expected 'a cgroup directory', found missing"
    ]
    backend.apply(ALICE, limits())
    assert backend.check(ALICE, limits()) == []
    (v1_root / "pids" / "ds01/default/alice" / "pids.max").write_text("max\n")
    (v1_root / "blkio" / "ds01/default/alice" / "blkio.throttle.write_bps_device").write_text(
        "7:0 1048576\n8:0 5\n"
    )
    found = [str(m) for m in backend.check(ALICE, limits())]
    blkio = f"{v1_root}/blkio/ds01/default/alice/blkio.throttle.write_bps_device"
    assert found == [
        f"{v1_root}/pids/ds01/default/alice/pids.max: expected '20', found 'max'",
        f"{blkio} [7:0]: expected '2097152', found '1048576'",
        f"{blkio} [8:0]: expected '0', found '5'",
    ]


def test_a_controller_that_is_not_mounted_is_left_out(v1_root: Path, recorder: Recorder) -> None:
    (v1_root / "pids").rmdir()
    backend = V1Cgroups(str(v1_root), write=recorder.write)
    result = backend.apply(ALICE, AggregateLimits(tasks_max=20, memory_max=MiB))
    assert result.errors == []
    assert [p.rsplit("/", 1)[1] for p, _ in recorder.writes] == ["memory.limit_in_bytes"]
    assert not (v1_root / "pids").exists()
    recorder.writes.clear()
    backend.apply(ALICE, AggregateLimits(tasks_max=20, memory_max=MiB))
    assert recorder.writes == []
