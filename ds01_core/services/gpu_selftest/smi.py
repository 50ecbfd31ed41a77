"""``nvidia-smi -L`` beside NVML: the same GPUs and MIG devices, by UUID, from NVIDIA's tool.

``nvidia-smi`` uses the same library but its own code, so agreement is a cheap second opinion
on the UUIDs ds01 hands to containers. When the binary is not installed, the check says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from ds01_core.services.gpu_selftest.raw import RawGpu, text
from ds01_core.services.gpu_selftest.report import Check, judged

_UUID = re.compile(r"\(UUID: ((?:GPU|MIG)-[^)\s]+)\)")
TIMEOUT_S = 20.0


def uuids_in(lines: Sequence[str]) -> list[str]:
    """The GPU and MIG UUIDs ``nvidia-smi -L`` printed, in order."""
    return [m.group(1) for line in lines for m in _UUID.finditer(line)]


def run_smi(binary: str | None = None) -> tuple[list[str] | None, str | None]:
    """(the lines of ``nvidia-smi -L``, None), or (None, why not)."""
    path = binary or shutil.which("nvidia-smi")
    if path is None:
        return None, "not installed"
    try:
        done = subprocess.run(
            [path, "-L"], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not run {path}: {exc}"
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        return None, f"{path} -L exited {done.returncode}: {said[-1] if said else 'no output'}"
    return done.stdout.splitlines(), None


def check_smi(raw: Sequence[RawGpu], lines: list[str] | None, problem: str | None) -> Check:
    """The UUIDs nvidia-smi lists are NVML's, each GPU's and each MIG device's."""
    if lines is None:
        missing = problem == "not installed"
        return judged(
            "nvidia-smi -L",
            "host",
            unsupported=missing,
            note=problem or "",
            failed=[] if missing else [str(problem)],
            provider="-",
            nvml=str(problem),
        )
    nvml = [text(g.uuid.value) for g in raw if g.uuid.ok]
    nvml += [text(m.uuid.value) for g in raw for m in g.migs if m.uuid.ok]
    listed = uuids_in(lines)
    differs = [f"{u} is in NVML, not in nvidia-smi -L" for u in nvml if u not in listed]
    differs += [f"{u} is in nvidia-smi -L, not in NVML" for u in listed if u not in nvml]
    return judged(
        "nvidia-smi -L",
        "host",
        differs=differs,
        provider="-",
        nvml=f"{len(listed)} UUIDs listed, {len(nvml)} from NVML",
    )
