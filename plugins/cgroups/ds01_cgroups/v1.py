"""Per-user limits on a cgroup v1 hierarchy (``<cgroup_fs>/<controller>/<user cgroup>``).

Files: ``cpu.cfs_period_us``/``cpu.cfs_quota_us``, ``memory.limit_in_bytes``, ``pids.max``,
``blkio.throttle.{read,write}_{bps,iops}_device``. ``memory_high`` has no v1 file and is not
written.

Two v1 rules shape this module:

- CFS bandwidth is hierarchical but strict: a child's quota above its parent's is EINVAL (both
  for a container started under a lower user quota, and for a user quota lowered below a running
  container's). When a user's quota goes down, the quotas of the cgroups below it that exceed
  it are lowered to it first (the kernel enforces the lower one anyway); the per-container
  ``NanoCpus`` set at create time is capped at the user's quota for the same reason.
- blk-throttle on v1 is *flat*: a limit on a parent does not cover its children (the kernel
  only makes it hierarchical on v2). The user cgroup still gets the limits (so ``check`` and
  processes placed there directly see them), and every container cgroup directly under it gets
  them too, each cycle for new containers, so on v1 an IO limit is per container, not shared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from ds01_cgroups.files import (
    ApplyResult,
    Mismatch,
    SettingKey,
    Settings,
    Writer,
    changed,
    mismatches,
    page_aligned,
    read_file,
    subdirectories,
    write_file,
    write_setting,
)
from ds01_cgroups.limits import CPU_PERIOD_US, AggregateLimits
from ds01_cgroups.naming import UserCgroup

log = logging.getLogger(__name__)

PERIOD = "cpu/cpu.cfs_period_us"
QUOTA = "cpu/cpu.cfs_quota_us"
MEMORY = "memory/memory.limit_in_bytes"
PIDS = "pids/pids.max"
BLKIO = {
    "rbps": "blkio/blkio.throttle.read_bps_device",
    "wbps": "blkio/blkio.throttle.write_bps_device",
    "riops": "blkio/blkio.throttle.read_iops_device",
    "wiops": "blkio/blkio.throttle.write_iops_device",
}
#: what a new cgroup's files hold
DEFAULTS = {
    PERIOD: str(CPU_PERIOD_US),
    QUOTA: "-1",
    MEMORY: "-1",
    PIDS: "max",
    **dict.fromkeys(BLKIO.values(), "0"),
}
_UNLIMITED_MEMORY = 1 << 62  # v1 reads "no limit" back as PAGE_COUNTER_MAX pages (~2^63)


def desired(limits: AggregateLimits, *, include_io: bool = True) -> Settings:
    """The v1 files for ``limits``; the period is written before the quota."""
    out: Settings = {}
    if limits.cpu_quota_us is not None:
        out[(PERIOD, None)] = str(CPU_PERIOD_US)
    out[(QUOTA, None)] = str(limits.cpu_quota_us) if limits.cpu_quota_us is not None else "-1"
    out[(MEMORY, None)] = (
        str(page_aligned(limits.memory_max)) if limits.memory_max is not None else "-1"
    )
    out[(PIDS, None)] = str(limits.tasks_max) if limits.tasks_max is not None else "max"
    if include_io:
        for io in limits.io:
            for attr, file in BLKIO.items():
                value = getattr(io, attr)
                out[(file, io.device.key)] = str(value) if value is not None else "0"
    return out


def _normalise(file: str, text: str) -> str:
    if file == MEMORY:
        try:
            return "-1" if int(text) >= _UNLIMITED_MEMORY else text
        except ValueError:
            return text
    return text


def read(path_of: Callable[[str], Path], files: Iterable[str]) -> Settings:
    """The current values of ``files`` (``controller/file``, found at ``path_of(file)``); a
    blkio file yields one key per device it lists (a device not listed is unlimited)."""
    out: Settings = {}
    for file in dict.fromkeys(files):
        text = read_file(path_of(file))
        if text is None:
            continue
        if file in BLKIO.values():
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and ":" in parts[0]:
                    out[(file, parts[0])] = parts[1]
        else:
            out[(file, None)] = _normalise(file, text)
    return out


def _resets(want: Settings, current: Settings) -> Settings:
    """Devices limited on disk that the configuration no longer limits: back to "0"."""
    return {
        (file, device): "0"
        for (file, device), value in current.items()
        if device is not None and (file, device) not in want and value != "0"
    }


def _controllers(settings: Iterable[SettingKey]) -> list[str]:
    return list(dict.fromkeys(file.split("/", 1)[0] for file, _ in settings))


class V1Cgroups:
    """Writes users' limits on a v1 hierarchy, remembering what it wrote so that a cycle with
    no change writes (and reads) nothing."""

    def __init__(self, cgroup_fs: str, *, write: Writer = write_file):
        self.root = Path(cgroup_fs)
        self.write = write
        self._applied: dict[str, Settings] = {}
        self._children: dict[str, dict[str, Settings]] = {}
        self._unmounted_logged: set[str] = set()

    def _desired(self, limits: AggregateLimits, *, include_io: bool = True) -> Settings:
        """:func:`desired`, less the files of controllers this host does not mount (said once:
        the other limits still hold)."""
        want = desired(limits, include_io=include_io)
        missing = {c for c in _controllers(want) if not (self.root / c).is_dir()}
        for controller in missing - self._unmounted_logged:
            self._unmounted_logged.add(controller)
            log.warning("cgroup v1 controller %s is not mounted under %s", controller, self.root)
        return {k: v for k, v in want.items() if k[0].split("/", 1)[0] not in missing}

    def _dir(self, controller: str, cg: UserCgroup) -> Path:
        return self.root / controller / cg.path

    def _path(self, file: str, cg_path: str) -> Path:
        controller, name = file.split("/", 1)
        return self.root / controller / cg_path / name

    def exists(self, cg: UserCgroup, settings: Iterable[SettingKey]) -> bool:
        return all(self._dir(c, cg).is_dir() for c in _controllers(settings))

    def current(self, cg: UserCgroup, want: Settings) -> Settings:
        """What the user's cgroup holds for ``want``'s files and for every blkio file (always
        read, so that a device limited on disk but no longer configured is found). A wanted
        device that a blkio file does not list, and a file that cannot be read (its cgroup
        does not exist yet), count as the kernel's defaults, what a new cgroup starts with."""
        files = [*(file for file, _ in want), *BLKIO.values()]
        found = read(lambda file: self._path(file, cg.path), files)
        for key in want:
            found.setdefault(key, DEFAULTS[key[0]])
        return found

    def apply(self, cg: UserCgroup, limits: AggregateLimits) -> ApplyResult:
        result = ApplyResult()
        want = self._desired(limits)
        known = self._applied.get(cg.path)
        exists = self.exists(cg, want)
        if known == want and exists:
            self._apply_children(cg, want, result)
            return result
        if not exists and not limits.any() and known is None:
            self._applied[cg.path] = want  # docker makes the directories with these defaults
            return result
        now = self.current(cg, want)
        target = {**want, **_resets(want, now)}
        for controller in _controllers(target):
            try:
                self._dir(controller, cg).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                result.errors.append(
                    f"cannot create {self._dir(controller, cg)}: {exc.strerror or exc}"
                )
        for key in changed(target, now):
            file, device = key
            text = f"{device} {target[key]}" if device else target[key]
            retry = None
            if file == QUOTA and limits.cpu_quota is not None:
                retry = lambda: self._lower_child_quotas(cg, limits.cpu_quota, result)  # noqa: E731
            write_setting(self.write, self._path(file, cg.path), text, result, retry=retry)
        if result.errors:
            self._applied.pop(cg.path, None)  # read the files again next cycle
        else:
            self._applied[cg.path] = want
        self._apply_children(cg, target, result)
        return result

    def _lower_child_quotas(self, cg: UserCgroup, cores: float, result: ApplyResult) -> bool:
        """Lower every cgroup below the user's whose CPU share exceeds ``cores`` to it, so the
        user's quota can be lowered (v1 refuses a parent below a child). True if any was."""
        lowered = False
        stack = list(subdirectories(self._dir("cpu", cg)))
        while stack:
            child = stack.pop()
            stack.extend(subdirectories(child))
            try:
                quota = int(read_file(child / "cpu.cfs_quota_us") or "-1")
                period = int(read_file(child / "cpu.cfs_period_us") or CPU_PERIOD_US)
            except ValueError:
                continue
            if quota > 0 and quota / period > cores:
                new = max(1000, int(cores * period))
                if write_setting(self.write, child / "cpu.cfs_quota_us", str(new), result):
                    result.notes.append(f"lowered {child.name[:12]}'s CPU quota to {new}/{period}")
                    lowered = True
        return lowered

    def _apply_children(self, cg: UserCgroup, target: Settings, result: ApplyResult) -> None:
        """Put the user's IO limits on each container cgroup below it (v1 throttling is flat).

        A child's lines for other devices are left alone.
        """
        io = {k: v for k, v in target.items() if k[1] is not None}
        if not io:
            self._children.pop(cg.path, None)
            return
        seen = self._children.setdefault(cg.path, {})
        present = {p.name: p for p in subdirectories(self._dir("blkio", cg))}
        for gone in set(seen) - set(present):
            del seen[gone]
        for name, child in present.items():
            if seen.get(name) == io:
                continue

            def in_child(file: str, child: Path = child) -> Path:
                return child / file.split("/", 1)[1]

            now = read(in_child, [f for f, _ in io])
            for key in io:
                now.setdefault(key, DEFAULTS[key[0]])
            errors_before = len(result.errors)
            for key in changed(io, now):
                file, device = key
                path = child / file.split("/", 1)[1]
                write_setting(self.write, path, f"{device} {io[key]}", result)
            if len(result.errors) == errors_before:
                seen[name] = io

    def check(
        self, cg: UserCgroup, limits: AggregateLimits, *, include_io: bool = True
    ) -> list[Mismatch]:
        """What differs between the configuration and the user's cgroup on disk."""
        want = self._desired(limits, include_io=include_io)
        if not self.exists(cg, want):
            if not limits.any():
                return []
            return [Mismatch(str(self.root / "*" / cg.path), "a cgroup directory", None)]
        current = self.current(cg, want)
        target = {**want, **(_resets(want, current) if include_io else {})}
        return [
            Mismatch(str(self._path(m.file, cg.path)), m.expected, m.actual, m.device)
            for m in mismatches(target, current)
        ]
