"""GPU inventory: which GPUs and MIG slots the host has, and which processes run on them.

``open_provider`` picks the provider the configuration asks for; ``auto`` uses NVML when the
library and driver load and the simulated DGX-A100 host otherwise, so ds01 runs everywhere and
always says which one it picked (``provider.description``).
"""

from __future__ import annotations

import logging

from ds01_core.domain.config import GpuConfig
from ds01_core.domain.gpu.base import GpuProvider, GpuProviderError

log = logging.getLogger(__name__)


def open_provider(gpu_config: GpuConfig) -> GpuProvider:
    """The provider for ``gpu.backend``.

    :raises GpuProviderError: ``nvml`` was asked for and does not load, or the simulated
        host's topology file is invalid.
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
            raise GpuProviderError(
                f"{exc} (gpu.backend is 'nvml'; use 'auto' or 'simulated' to run without an "
                "NVIDIA driver)"
            ) from exc
        log.info("GPU backend auto: %s; using the simulated host", exc)
        return _simulated(gpu_config, reason=f"auto: {exc}")


def _simulated(gpu_config: GpuConfig, reason: str | None) -> GpuProvider:
    # lazy: a real server never loads the simulated host (nor its YAML topology reader)
    from ds01_core.domain.gpu.simulated import SimulatedProvider

    sim = gpu_config.simulated
    return SimulatedProvider(sim.topology, sim.processes_file, reason=reason)


__all__ = ["GpuProvider", "GpuProviderError", "open_provider"]
