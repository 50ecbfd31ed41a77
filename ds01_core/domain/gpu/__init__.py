"""GPU inventory: which GPUs and MIG slots the host has, and which processes run on them.

``open_provider`` picks the provider the configuration asks for. ``auto`` uses NVML when it
starts; the simulated DGX-A100 host only on a machine with no trace of an NVIDIA driver (no
``libnvidia-ml`` and no ``/dev/nvidiactl`` or ``/dev/nvidiaN``), so a GPU server whose NVML
fails to start is never shown invented GPUs: it is *unavailable*
(:class:`~ds01_core.domain.gpu.access.GpuUnavailableError`), retried by
:class:`~ds01_core.domain.gpu.access.GpuAccess`. ``provider.description`` says which one is in use.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from pathlib import Path

import attrs

from ds01_core.domain.config import GpuConfig
from ds01_core.domain.gpu.access import GpuAccess, GpuUnavailableError
from ds01_core.domain.gpu.base import GpuProvider, GpuProviderError

log = logging.getLogger(__name__)

#: where distributions and the NVIDIA installers put ``libnvidia-ml.so.1``
LIBRARY_DIRS = (
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "usr/lib64",
    "usr/lib",
    "usr/local/nvidia/lib64",
    "lib/x86_64-linux-gnu",
    "lib64",
)


def _library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # what pynvml loads; loading it initialises nothing
    except OSError:
        return False
    return True


@attrs.frozen
class NvidiaEvidence:
    """Where to look for an NVIDIA driver; a test points ``root`` at a directory of its own.

    ``load_library`` is asked only when ``root`` is the real one.
    """

    root: str = "/"
    load_library: Callable[[], bool] = _library_loads

    def found(self) -> list[str]:
        """What shows that this machine has an NVIDIA driver or devices (empty: none at all)."""
        base = Path(self.root)
        seen = [str(p) for d in LIBRARY_DIRS for p in sorted((base / d).glob("libnvidia-ml.so*"))]
        if self.root == "/" and not seen and self.load_library():
            seen.append("libnvidia-ml.so.1 loads")
        dev = base / "dev"
        seen += [
            str(p) for p in [dev / "nvidiactl", *sorted(dev.glob("nvidia[0-9]*"))] if _exists(p)
        ]
        if _exists(base / "proc/driver/nvidia/version"):
            seen.append(str(base / "proc/driver/nvidia/version"))
        return seen


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:  # a directory above it closed to this process: it exists
        return True


DEFAULT_EVIDENCE = NvidiaEvidence()


def open_provider(gpu_config: GpuConfig, evidence: NvidiaEvidence | None = None) -> GpuProvider:
    """The provider for ``gpu.backend``.

    :raises GpuUnavailableError: NVML does not start on a machine with an NVIDIA driver or
        devices (or ``nvml`` is asked for): try again later.
    :raises GpuProviderError: the simulated host's topology file is invalid.
    """
    # lazy: only the provider the configuration chooses is loaded (every CLI start opens none)
    from ds01_core.domain.gpu.nvml import NvmlProvider

    backend = gpu_config.backend
    if backend == "simulated":
        return _simulated(gpu_config, reason=None)
    try:
        return NvmlProvider()
    except GpuProviderError as exc:
        if backend == "nvml":
            raise GpuUnavailableError(
                f"NVML: {exc} (gpu.backend is 'nvml'; use 'auto' or 'simulated' to run without "
                "an NVIDIA driver)"
            ) from exc
        found = (evidence or DEFAULT_EVIDENCE).found()
        if found:
            raise GpuUnavailableError(
                f"NVML: {exc} (this machine has an NVIDIA driver or devices: "
                f"{', '.join(found[:3])}; ds01 never uses its simulated host here)"
            ) from exc
        log.info("GPU backend auto: %s, and no NVIDIA driver or device: simulated host", exc)
        return _simulated(gpu_config, reason=f"auto: {exc}; no NVIDIA driver or device")


def _simulated(gpu_config: GpuConfig, reason: str | None) -> GpuProvider:
    # lazy: a real server never loads the simulated host (nor its YAML topology reader)
    from ds01_core.domain.gpu.simulated import SimulatedProvider

    sim = gpu_config.simulated
    return SimulatedProvider(
        sim.topology, sim.processes_file, reason=reason, faults_file=sim.faults_file
    )


__all__ = [
    "GpuAccess",
    "GpuProvider",
    "GpuProviderError",
    "GpuUnavailableError",
    "NvidiaEvidence",
    "open_provider",
]
