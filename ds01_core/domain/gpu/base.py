"""What every GPU inventory provider offers, so the rest of ds01 never asks which one it has."""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

import attrs

from ds01_core.domain.model import Gpu, GpuProcess, GpuSlot

#: What :meth:`NvmlProvider.health` says of a GPU whose last reads all succeeded; otherwise
#: ``"degraded: <call>: <error>"``.
HEALTH_OK = "ok"


class GpuProviderError(Exception):
    """The GPU inventory cannot be read at all (no driver, a broken topology file, …).

    Per-metric failures never raise this: they degrade to ``None`` for that metric.
    """


@attrs.frozen
class ProcessListing:
    """The compute processes the driver reported, and where it could say: unknown is not
    "none" (a process query that fails must never read as an idle GPU).

    ``read``: the leaf UUIDs whose processes were read (None: all of them); the processes of any
    other leaf are unknown. ``complete``: every leaf of every GPU was listed, so a slot the
    listing does not name no longer exists (rather than could not be read).
    """

    processes: tuple[GpuProcess, ...] = ()
    read: frozenset[str] | None = None
    complete: bool = True


@runtime_checkable
class GpuProvider(Protocol):
    """A source of GPUs, their slots and the compute processes on them.

    ``name`` is ``"nvml"`` or ``"simulated"`` (or a third party's); ``description`` is one line
    for people that says which provider was picked and why.
    """

    name: str
    description: str

    def gpus(self) -> list[Gpu]:
        """Every readable GPU, with its slots (itself when MIG is off, its MIG instances when on)."""
        ...

    def slots(self) -> list[GpuSlot]:
        """The leaf devices a container can be given, ordered by GPU index then instance."""
        ...

    def processes(self) -> list[GpuProcess]:
        """Compute processes per leaf device; ``slot_uuid`` is the leaf's UUID."""
        ...

    # Optional, where a provider offers them (the NVML provider does; callers use getattr):
    # ``process_listing() -> ProcessListing`` (processes with what could not be read) and
    # ``health() -> dict[int, str]`` (GPU index -> HEALTH_OK or "degraded: <call>: <error>")
    # and ``telemetry() -> list[GpuTelemetry]`` (each whole GPU's sensors, error counters and
    # XIDs, one per GPU index, never per MIG device; a lost GPU is ``fell_off_bus``, a reading
    # the GPU lacks is None; it never raises for one GPU: see docs/gpu-telemetry.md).

    def close(self) -> None:
        """Release the driver session; further calls raise :class:`GpuProviderError`."""
        ...


def process_listing(provider: GpuProvider) -> ProcessListing:
    """The provider's processes and which slots it read; for a provider that does not say,
    every slot counts as read."""
    listing = getattr(provider, "process_listing", None)
    if listing is not None:
        return cast(ProcessListing, listing())
    return ProcessListing(tuple(provider.processes()))
