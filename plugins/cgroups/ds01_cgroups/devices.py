"""The block device behind a path, as IO throttling needs it: a whole disk's ``MAJ:MIN``.

``os.stat(path).st_dev`` gives the device of the file system holding ``path``. Two cases need
care:

- a partition (``/dev/sda2``): blk-throttle works on a disk's request queue, so v1
  ``blkio.throttle.*`` and v2 ``io.max`` refuse a partition's number; the parent disk is found
  through ``/sys/dev/block/MAJ:MIN`` (a partition has a ``partition`` file there, and its
  directory sits inside the disk's) and throttled instead. The limit then covers the whole
  disk, every partition of it included.
- major 0 (overlay, tmpfs, btrfs subvolumes, NFS): no block device to name, so the path is
  skipped and said so; throttle the disk under it by listing a path on it in ``data_paths``.

Device-mapper (LVM, dm-crypt), md and loop devices are whole devices with their own queue and
are throttled as they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

log = logging.getLogger(__name__)


@attrs.frozen(order=True)
class BlockDevice:
    """A whole block device: its numbers and its kernel name (``vda``, ``loop3``, ``dm-0``)."""

    major: int
    minor: int
    name: str = attrs.field(default="", eq=False, order=False)

    @property
    def key(self) -> str:
        """``MAJ:MIN``, as every cgroup IO file names a device."""
        return f"{self.major}:{self.minor}"

    @property
    def node(self) -> str:
        """A device node path for the device, for Docker's ``Blkio*`` options and systemd's
        ``IO*`` directives (both stat it and use its numbers)."""
        return f"/dev/{self.name}" if self.name else f"/dev/block/{self.key}"


@attrs.frozen
class Skipped:
    """A path whose device cannot be throttled, and why."""

    path: str
    reason: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _devname(sys_dir: Path) -> str:
    for line in (_read(sys_dir / "uevent") or "").splitlines():
        if line.startswith("DEVNAME="):
            return line.split("=", 1)[1]
    return sys_dir.name


def whole_disk(major: int, minor: int, sys_root: str = "/sys") -> BlockDevice:
    """The disk that ``major:minor`` is, or the disk it is a partition of."""
    link = Path(sys_root, "dev", "block", f"{major}:{minor}")
    if not link.exists():
        return BlockDevice(major, minor)
    here = link.resolve()
    if not (here / "partition").exists():
        return BlockDevice(major, minor, _devname(here))
    parent = here.parent
    numbers = _read(parent / "dev")
    if not numbers or ":" not in numbers:
        log.warning("partition %d:%d: no parent disk under %s", major, minor, parent)
        return BlockDevice(major, minor, _devname(here))
    pmaj, pmin = (int(n) for n in numbers.split(":", 1))
    return BlockDevice(pmaj, pmin, _devname(parent))


def device_of(
    path: str, sys_root: str = "/sys", stat: Callable[[str], os.stat_result] = os.stat
) -> BlockDevice | Skipped:
    """The whole disk holding ``path``, or why there is none."""
    try:
        st_dev = stat(path).st_dev
    except OSError as exc:
        return Skipped(path, f"cannot stat: {exc.strerror or exc}")
    major, minor = os.major(st_dev), os.minor(st_dev)
    if major == 0:
        return Skipped(
            path,
            f"on a file system without a block device ({major}:{minor}: overlay, tmpfs, btrfs "
            "subvolume or network); list a path on the disk below it in data_paths",
        )
    return whole_disk(major, minor, sys_root)


def devices_for(
    paths: Iterable[str],
    sys_root: str = "/sys",
    stat: Callable[[str], os.stat_result] = os.stat,
) -> tuple[tuple[BlockDevice, ...], tuple[Skipped, ...]]:
    """The distinct disks under ``paths`` (sorted by number), and the paths skipped."""
    found: dict[str, BlockDevice] = {}
    skipped = []
    for path in paths:
        result = device_of(path, sys_root, stat)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            found.setdefault(result.key, result)
    return tuple(sorted(found.values())), tuple(skipped)
