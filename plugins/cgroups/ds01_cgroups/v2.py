"""Per-user limits on a cgroup v2 (unified) hierarchy (``<cgroup_fs>/<user cgroup>``).

Files: ``cpu.max`` (``QUOTA PERIOD``), ``memory.max``, ``memory.high``, ``pids.max`` and
``io.max`` (one line per device: ``MAJ:MIN rbps=… wbps=… riops=… wiops=…``). On v2 every
limit is hierarchical, so one value on the user's cgroup covers all their containers together.

A v2 limit file exists only where the parent enables the controller, so before the first write
the controllers are enabled (``+cpu +io +memory +pids``) in ``cgroup.subtree_control`` of the
root and of every ds01 cgroup above the user's, as far as each one offers them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from ds01_cgroups.files import (
    ApplyResult,
    Mismatch,
    Settings,
    Writer,
    changed,
    mismatches,
    page_aligned,
    read_file,
    write_file,
    write_setting,
)
from ds01_cgroups.limits import CPU_PERIOD_US, AggregateLimits
from ds01_cgroups.naming import UserCgroup

log = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "io", "memory", "pids")
IO_MAX = "io.max"
IO_UNLIMITED = "rbps=max wbps=max riops=max wiops=max"
#: what a new cgroup's files hold
DEFAULTS = {
    "cpu.max": f"max {CPU_PERIOD_US}",
    "memory.max": "max",
    "memory.high": "max",
    "pids.max": "max",
    IO_MAX: IO_UNLIMITED,
}


def _value(value: int | None) -> str:
    return "max" if value is None else str(value)


def desired(limits: AggregateLimits, *, include_io: bool = True) -> Settings:
    """The v2 files for ``limits``, keyed like :mod:`ds01_cgroups.files` says."""
    quota = limits.cpu_quota_us
    out: Settings = {
        ("cpu.max", None): f"{_value(quota)} {CPU_PERIOD_US}",
        ("memory.max", None): _value(
            None if limits.memory_max is None else page_aligned(limits.memory_max)
        ),
        ("memory.high", None): _value(
            None if limits.memory_high is None else page_aligned(limits.memory_high)
        ),
        ("pids.max", None): _value(limits.tasks_max),
    }
    if include_io:
        for io in limits.io:
            out[(IO_MAX, io.device.key)] = (
                f"rbps={_value(io.rbps)} wbps={_value(io.wbps)} "
                f"riops={_value(io.riops)} wiops={_value(io.wiops)}"
            )
    return out


def read(directory: Path, files: Iterable[str]) -> Settings:
    """The current values of ``files``; ``io.max`` yields one key per device it lists."""
    out: Settings = {}
    for file in dict.fromkeys(files):
        text = read_file(directory / file)
        if text is None:
            continue
        if file == IO_MAX:
            for line in text.splitlines():
                device, _, rest = line.strip().partition(" ")
                if ":" in device:
                    out[(IO_MAX, device)] = " ".join(rest.split())
        else:
            out[(file, None)] = text
    return out


def current(directory: Path, want: Settings) -> Settings:
    """What ``directory`` holds for ``want``'s files and for ``io.max`` (always read, so that a
    device limited on disk but no longer configured is found). A wanted device that ``io.max``
    does not list, and a file that cannot be read, count as the kernel's defaults."""
    found = read(directory, [*(f for f, _ in want), IO_MAX])
    for key in want:
        found.setdefault(key, DEFAULTS[key[0]])
    return found


def _resets(want: Settings, current: Settings) -> Settings:
    """Devices limited on disk that the configuration no longer limits: back to unlimited."""
    return {
        key: IO_UNLIMITED
        for key, value in current.items()
        if key[0] == IO_MAX and key not in want and value != IO_UNLIMITED
    }


def _enabled(text: str | None) -> set[str]:
    return {word.lstrip("+") for word in (text or "").split() if not word.startswith("-")}


class V2Cgroups:
    """Writes users' limits on a v2 hierarchy, remembering what it wrote so that a cycle with
    no change writes (and reads) nothing."""

    def __init__(self, cgroup_fs: str, *, write: Writer = write_file):
        self.root = Path(cgroup_fs)
        self.write = write
        self._applied: dict[str, Settings] = {}

    def _dir(self, cg: UserCgroup) -> Path:
        return self.root / cg.path

    def _enable_controllers(self, cg: UserCgroup, result: ApplyResult) -> None:
        """Enable the controllers from the root down to the user's parent, where missing.

        A directory without ``cgroup.controllers`` (only in a test's fake tree) offers what its
        parent enables.
        """
        parts = cg.path.split("/")[:-1]
        chain = [self.root] + [self.root.joinpath(*parts[: i + 1]) for i in range(len(parts))]
        offered: set[str] = set()
        for directory in chain:
            try:
                directory.mkdir(exist_ok=True)
            except OSError as exc:
                result.errors.append(f"cannot create {directory}: {exc.strerror or exc}")
                return
            listed = read_file(directory / "cgroup.controllers")
            if listed is not None:
                offered = _enabled(listed)
            enabled = _enabled(read_file(directory / "cgroup.subtree_control"))
            missing = [c for c in CONTROLLERS if c in offered and c not in enabled]
            if missing:
                text = " ".join(f"+{c}" for c in missing)
                if write_setting(self.write, directory / "cgroup.subtree_control", text, result):
                    enabled.update(missing)
            offered = enabled

    def apply(self, cg: UserCgroup, limits: AggregateLimits) -> ApplyResult:
        result = ApplyResult()
        want = desired(limits)
        known = self._applied.get(cg.path)
        directory = self._dir(cg)
        exists = directory.is_dir()
        if known == want and exists:
            return result
        if not exists and not limits.any() and known is None:
            self._applied[cg.path] = want  # docker makes the directory with these defaults
            return result
        now = current(directory, want)
        resets = _resets(want, now)
        target = {**want, **resets}
        self._enable_controllers(cg, result)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            result.errors.append(f"cannot create {directory}: {exc.strerror or exc}")
        for key in changed(target, now):
            file, device = key
            text = f"{device} {target[key]}" if device else target[key]
            write_setting(self.write, directory / file, text, result)
        if result.errors:
            self._applied.pop(cg.path, None)
        else:
            self._applied[cg.path] = want
        return result

    def check(
        self, cg: UserCgroup, limits: AggregateLimits, *, include_io: bool = True
    ) -> list[Mismatch]:
        """What differs between the configuration and the user's cgroup on disk."""
        want = desired(limits, include_io=include_io)
        directory = self._dir(cg)
        if not directory.is_dir():
            return (
                [] if not limits.any() else [Mismatch(str(directory), "a cgroup directory", None)]
            )
        now = current(directory, want)
        target = {**want, **(_resets(want, now) if include_io else {})}
        return [
            Mismatch(str(directory / m.file), m.expected, m.actual, m.device)
            for m in mismatches(target, now)
        ]
