"""``gpu.selftest``: what the GPU provider reads, beside NVML's raw answers, with a verdict each.

For admins at install time and for support: the GPUs, the MIG layout with NVML's indices and
UUIDs, the processes per slot, utilisation or GPM read twice ``interval`` seconds apart, power,
energy, ECC and clocks where supported, each GPU's telemetry (sensors, error counters, XIDs:
what the health step reads), minor numbers, which calls NVML does not support, and
``nvidia-smi -L``. The service opens NVML itself, through a wrapper that can only call getters
(:mod:`.readonly`), so it never changes a GPU; it streams progress lines and then the report.

The parts: :mod:`.readonly` (the allow-list), :mod:`.answers` and :mod:`.raw` (NVML's answers),
:mod:`.checks_layout`, :mod:`.checks_readings` and :mod:`.checks_telemetry` (the comparisons), :mod:`.smi`
(``nvidia-smi -L``), :mod:`.report` (verdicts), :mod:`.runner` (one run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ds01_core.services.errors import Invalid
from ds01_core.services.operations import Operation, Param, ServiceContext

DEFAULT_INTERVAL = 2.0
MAX_INTERVAL = 60.0


def selftest(ctx: ServiceContext, interval: float = DEFAULT_INTERVAL) -> Iterator[dict[str, Any]]:
    """``{"progress": text}`` records while NVML is read, then ``{"report": {...}}``."""
    if not 0 < interval <= MAX_INTERVAL:
        raise Invalid(
            f"interval must be more than 0 and at most {MAX_INTERVAL:g} seconds, got {interval:g}"
        )
    # lazy: the NVML provider and the checks load when an admin runs the self-test, not with
    # every operation table
    from ds01_core.services.gpu_selftest.runner import open_nvml, run_selftest

    nvml, backend, dev_dir = open_nvml(ctx.runtime.config.gpu)
    return _records(run_selftest(nvml, interval=interval, backend=backend, dev_dir=dev_dir))


def _records(events: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for event in events:
        if isinstance(event, str):
            yield {"progress": event}
        else:
            yield {"report": event.to_json()}


OPERATIONS = (
    Operation(
        "gpu.selftest",
        "GET",
        "/v1/gpus/selftest",
        selftest,
        (Param("interval", "float", default=DEFAULT_INTERVAL),),
        admin=True,
        stream="jsonl",
        summary="Read-only GPU self-test: the provider's readings beside NVML's answers.",
    ),
)
