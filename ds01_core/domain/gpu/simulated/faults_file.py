"""The faults file: GPU faults for the simulated host, re-read whenever the file changes.

A YAML or JSON file (``gpu.simulated.faults_file``), per GPU index::

    gpus:
      0: {temperature: 93, throttle: [hw_thermal, sw_thermal]}
      1: {ecc_corrected: 12, ecc_uncorrected: 2}
      2: {xid: [79, 48]}
      3: {fell_off_bus: true}
      4: {remap_failure: true, pending_retirement: true}

Structured with the configuration's converter, so a bad file is refused with its path and the
key at fault; it is logged, and the last good faults stay. A missing file means no fault.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

from ds01_core.domain.config import ConfigProblem, structure_section
from ds01_core.domain.gpu.health import THROTTLE_REASONS
from ds01_core.domain.gpu.simulated.health_faults import HealthFault
from ds01_core.domain.gpu.simulated.topology import SimulatedTopologyError, read_data

log = logging.getLogger(__name__)


@attrs.define
class FaultsSpec:
    """The faults file: GPU index -> its faults."""

    gpus: dict[int, HealthFault] = attrs.Factory(dict)


def parse_faults(data: Any, gpu_count: int, source: str) -> dict[int, HealthFault]:
    """The faults a file's parsed content describes, or raise naming every bad key."""
    if isinstance(data, dict) and isinstance(data.get("gpus"), dict):
        # JSON keys are strings: "0" is GPU 0 (a key that is no number is refused below)
        data = {**data, "gpus": {_index_key(k): v for k, v in data["gpus"].items()}}
    spec, problems = structure_section(data, FaultsSpec, "")
    if spec is not None:
        for index, fault in spec.gpus.items():
            problems += _check_fault(f"gpus[{index}]", index, fault, gpu_count)
    if problems or spec is None:
        raise SimulatedTopologyError(source, problems)
    return dict(spec.gpus)


def _index_key(key: Any) -> Any:
    return int(key) if isinstance(key, str) and key.strip().isdigit() else key


def _check_fault(path: str, index: int, fault: HealthFault, gpu_count: int) -> list[ConfigProblem]:
    problems = []
    if not 0 <= index < gpu_count:
        problems.append(
            ConfigProblem(path, f"no GPU {index} on the simulated host (GPUs 0 to {gpu_count - 1})")
        )
    if fault.temperature is not None and not -40 <= fault.temperature <= 150:
        problems.append(ConfigProblem(f"{path}.temperature", "must be -40 to 150 (°C)"))
    for place, name in enumerate(fault.throttle):
        if name not in THROTTLE_REASONS:
            problems.append(
                ConfigProblem(
                    f"{path}.throttle[{place}]",
                    f"unknown reason {name!r} (reasons: {', '.join(THROTTLE_REASONS)})",
                )
            )
    for key in ("ecc_corrected", "ecc_uncorrected"):
        value = getattr(fault, key)
        if value is not None and value < 0:
            problems.append(ConfigProblem(f"{path}.{key}", f"cannot be negative, got {value}"))
    for place, code in enumerate(fault.xid):
        if code <= 0:
            problems.append(ConfigProblem(f"{path}.xid[{place}]", f"must be positive, got {code}"))
    return problems


class FaultsFile:
    """A faults file, parsed again when it changes; a missing file means no fault.

    :meth:`poll` gives the new faults when the file changed and can be used; ``error`` says
    why the current version cannot (None: it can).
    """

    def __init__(self, path: str | Path, gpu_count: int):
        self.path = Path(path).expanduser()
        self.gpu_count = gpu_count
        self.error: str | None = None
        self._key: tuple[int, int, int] | None = None

    def poll(self) -> dict[int, HealthFault] | None:
        """The file's faults if it changed since the last poll (``{}``: removed), else None
        (unchanged, or changed into something refused: the last good faults stay)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._key is None:
                return None
            self._key, self.error = None, None
            return {}
        except OSError as exc:
            self._refuse(f"{self.path}: cannot read: {exc.strerror}")
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key == self._key:
            return None
        self._key = key
        try:
            faults = parse_faults(read_data(self.path), self.gpu_count, str(self.path))
        except SimulatedTopologyError as exc:
            self._refuse(str(exc))
            return None
        self.error = None
        log.info("simulated GPU faults from %s: %s", self.path, _summary(faults))
        return faults

    def _refuse(self, error: str) -> None:
        if error != self.error:
            log.error("simulated GPU faults file refused (the last good faults stay): %s", error)
        self.error = error


def _summary(faults: dict[int, HealthFault]) -> str:
    if not faults:
        return "none"
    parts = []
    for index, fault in sorted(faults.items()):
        given = {k: v for k, v in attrs.asdict(fault).items() if v not in (None, False, [])}
        parts.append(f"GPU {index} {given}")
    return "; ".join(parts)
