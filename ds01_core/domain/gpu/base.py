"""What every GPU inventory provider offers, so the rest of ds01 never asks which one it has."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ds01_core.domain.model import Gpu, GpuProcess, GpuSlot


class GpuProviderError(Exception):
    """The GPU inventory cannot be read at all (no driver, a broken topology file, …).

    Per-metric failures never raise this: they degrade to ``None`` for that metric.
    """


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

    def close(self) -> None:
        """Release the driver session; further calls raise :class:`GpuProviderError`."""
        ...
