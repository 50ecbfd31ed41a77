"""Fakes for the ds01-cgroups tests (imported by name: ``from cgroups_helpers import …``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ds01_cgroups.files import write_file


class FakeDocker:
    """The three engine calls the plugin makes, over a dict of inspect results."""

    def __init__(self, info: Mapping[str, Any] | None = None):
        self.info_data = dict(
            info
            or {
                "CgroupDriver": "cgroupfs",
                "CgroupVersion": "1",
                "DockerRootDir": "/nonexistent-docker-root",
            }
        )
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def add(
        self,
        cid: str,
        name: str,
        *,
        parent: str = "",
        memory: int = 0,
        state: str = "running",
        owner: str | None = None,
    ) -> str:
        """A container as ``GET /containers/{id}/json`` shows it (the fields ds01 reads)."""
        self.containers[cid] = {
            "Id": cid,
            "Name": "/" + name,
            "Created": "2026-01-01T00:00:00Z",
            "State": {"Status": state, "Pid": 0},
            "Config": {"Labels": {"ds01.user": owner} if owner else {}, "Image": "img", "Env": []},
            "Mounts": [],
            "HostConfig": {"CgroupParent": parent, "Memory": memory},
        }
        return cid

    def info(self) -> dict[str, Any]:
        self.calls.append("info")
        return dict(self.info_data)

    def list_containers(self, all: bool = True, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append("list")
        return [
            {"Id": cid, "Names": [c["Name"]], "State": c["State"]["Status"]}
            for cid, c in self.containers.items()
        ]

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        self.calls.append(f"inspect {container}")
        return self.containers.get(container)


_PER_DEVICE = {
    "io.max",
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
}


def kernel_like_write(path: Path, text: str) -> None:
    """Write as cgroupfs does where a plain file would not: ``cgroup.subtree_control`` takes
    ``+x -y`` and lists what is enabled; per-device files keep one line per device (a
    line with no limit left removes the device)."""
    name = path.name
    if name == "cgroup.subtree_control":
        enabled = set(path.read_text().split()) if path.exists() else set()
        for word in text.split():
            (enabled.discard if word.startswith("-") else enabled.add)(word.lstrip("+-"))
        write_file(path, " ".join(sorted(enabled)) + "\n")
        return
    if name in _PER_DEVICE:
        lines = {}
        if path.exists():
            for line in path.read_text().splitlines():
                lines[line.split()[0]] = line
        device, _, value = text.partition(" ")
        unlimited = value.strip() in ("0", "rbps=max wbps=max riops=max wiops=max")
        if unlimited:
            lines.pop(device, None)
        else:
            lines[device] = text
        write_file(path, "".join(f"{line}\n" for line in lines.values()))
        return
    write_file(path, text)


class Recorder:
    """A writer that records (path, text) and then writes like the kernel, and a command
    runner that records argv (and can be told to fail)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.commands: list[list[str]] = []
        self.fail_commands = False

    def write(self, path: Path, text: str) -> None:
        self.writes.append((str(path), text))
        kernel_like_write(path, text)

    def run(self, argv: Any) -> None:
        from ds01_cgroups.systemd import CommandError

        self.commands.append(list(argv))
        if self.fail_commands:
            raise CommandError(f"{' '.join(argv)} exited 1: Failed to connect to bus")


def make_sysfs(root: Path) -> Path:
    """A fake /sys with a disk sda (8:0) and its partition sda1 (8:1), and loop0 (7:0)."""
    sys_root = root / "sys"
    disk = sys_root / "devices" / "pci0000:00" / "block" / "sda"
    part = disk / "sda1"
    loop = sys_root / "devices" / "virtual" / "block" / "loop0"
    for directory, numbers, name in (
        (disk, "8:0", "sda"),
        (part, "8:1", "sda1"),
        (loop, "7:0", "loop0"),
    ):
        directory.mkdir(parents=True)
        (directory / "dev").write_text(numbers + "\n")
        (directory / "uevent").write_text(f"MAJOR={numbers.split(':')[0]}\nDEVNAME={name}\n")
    (part / "partition").write_text("1\n")
    links = sys_root / "dev" / "block"
    links.mkdir(parents=True)
    for numbers, target in (("8:0", disk), ("8:1", part), ("7:0", loop)):
        (links / numbers).symlink_to(os.path.relpath(target, links))
    return sys_root


def fake_stat(devices: Mapping[str, tuple[int, int]]) -> Callable[[str], os.stat_result]:
    """``os.stat`` for paths named in ``devices`` (path → (major, minor)); others: ENOENT."""

    def stat(path: str) -> os.stat_result:
        if path not in devices:
            raise FileNotFoundError(2, "No such file or directory", path)
        major, minor = devices[path]
        fields = [0o40755, 1, os.makedev(major, minor), 1, 0, 0, 0, 0, 0, 0]
        return os.stat_result(fields)

    return stat
