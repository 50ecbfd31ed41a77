"""The whole disk behind a path: partitions resolve to their disk, major 0 is skipped."""

from __future__ import annotations

import os
from pathlib import Path

from cgroups_helpers import fake_stat

from ds01_cgroups.devices import BlockDevice, Skipped, device_of, devices_for, whole_disk


def test_a_partition_resolves_to_its_disk(fake_sys: Path) -> None:
    stat = fake_stat({"/data": (8, 1)})
    device = device_of("/data", str(fake_sys), stat)
    assert device == BlockDevice(8, 0)
    assert isinstance(device, BlockDevice)
    assert (device.key, device.name, device.node) == ("8:0", "sda", "/dev/sda")


def test_a_whole_device_stays_itself(fake_sys: Path) -> None:
    assert whole_disk(7, 0, str(fake_sys)) == BlockDevice(7, 0)
    assert whole_disk(7, 0, str(fake_sys)).name == "loop0"
    assert whole_disk(8, 0, str(fake_sys)).name == "sda"


def test_unknown_numbers_are_kept_as_they_are(fake_sys: Path) -> None:
    device = whole_disk(253, 3, str(fake_sys))
    assert (device.key, device.node) == ("253:3", "/dev/block/253:3")


def test_major_zero_and_missing_paths_are_skipped_with_a_reason(fake_sys: Path) -> None:
    stat = fake_stat({"/var/lib/docker": (0, 52)})
    skipped = device_of("/var/lib/docker", str(fake_sys), stat)
    assert isinstance(skipped, Skipped) and "without a block device" in skipped.reason
    missing = device_of("/nowhere", str(fake_sys), stat)
    assert isinstance(missing, Skipped) and "cannot stat" in missing.reason


def test_devices_for_dedupes_and_sorts(fake_sys: Path) -> None:
    stat = fake_stat({"/a": (8, 1), "/b": (8, 0), "/c": (7, 0), "/d": (0, 40)})
    found, skipped = devices_for(["/a", "/b", "/c", "/d", "/e"], str(fake_sys), stat)
    assert [d.key for d in found] == ["7:0", "8:0"]
    assert [s.path for s in skipped] == ["/d", "/e"]


def test_the_real_root_file_system() -> None:
    """On this host: whatever holds / is either a whole disk sysfs knows, or skipped."""
    result = device_of("/")
    if isinstance(result, BlockDevice):
        link = Path("/sys/dev/block", result.key)
        assert link.exists() and not (link / "partition").exists()
        st_dev = os.stat("/").st_dev
        assert os.major(st_dev) != 0
    else:
        assert result.reason
