"""The GPU provider: does NVML answer, and is the simulated host in use only where it should be?

ds01 never falls back to invented GPUs on a machine with an NVIDIA driver; when NVML does not
start there, the GPUs are *unavailable* (nothing is allocated) and this check says why and what
to look at. A release by an admin (``ds01 admin gpu release``) is reported too, so that one left
behind after a MIG change does not go unnoticed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_core.domain.gpu.access import GpuUnavailableError
from ds01_core.domain.gpu.base import GpuProviderError
from ds01_core.services.doctor.findings import Finding

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

CHECK = "gpu-provider"

UNAVAILABLE_FIX = (
    "`nvidia-smi` as root says whether the driver answers; `lsmod | grep nvidia` whether it is "
    "loaded; after a driver upgrade without a reboot, reboot (or reload the nvidia modules); "
    "check that the ds01 services may open /dev/nvidiactl and /dev/nvidia*. ds01 retries by "
    "itself and reports `gpu.available` when NVML answers"
)


def check_gpu_provider(runtime: Runtime) -> list[Finding]:
    """One finding: the provider answers (which one, how many GPUs), or why it does not."""
    backend = runtime.config.gpu.backend
    try:
        provider = runtime.gpu
        count = len(provider.gpus())
    except GpuUnavailableError as exc:
        state = runtime.gpu_state()
        if state["state"] == "released":
            return [
                Finding(
                    CHECK,
                    "released",
                    False,
                    str(exc),
                    "`ds01 admin gpu resume` once the MIG change or GPU reset is done",
                )
            ]
        since = f" since {state['since']}" if state.get("since") else ""
        retry = f"; ds01 retries in {state['retry_in']:.0f} s" if state.get("retry_in") else ""
        message = f"GPUs unavailable{since}: {state.get('error') or exc}{retry}"
        return [Finding(CHECK, backend, False, message, UNAVAILABLE_FIX)]
    except GpuProviderError as exc:
        return [Finding(CHECK, backend, False, str(exc), "fix gpu.simulated in the configuration")]
    if provider.name == "simulated" and backend == "auto":
        return [
            Finding(
                CHECK,
                provider.name,
                True,
                f"{provider.description}: this machine has no NVIDIA driver or device, so "
                "ds01 shows its simulated host",
            )
        ]
    if provider.name != "simulated" and count == 0:
        return [
            Finding(
                CHECK,
                provider.name,
                False,
                f"{provider.description}, but no GPU could be read",
                "`nvidia-smi -q` shows what the driver says about each GPU; see the ds01 logs "
                "for the GPUs left out and why",
            )
        ]
    return [Finding(CHECK, provider.name, True, f"{provider.description}: {count} GPU(s) read")]
