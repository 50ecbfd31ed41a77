"""``ds01 gpu``: the GPU inventory as ds01 sees it (GPUs, MIG slots, their weights, processes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.gpu.base import GpuProvider, GpuProviderError
from ds01_core.model import Gpu, GpuProcess, GpuSlot

GIB = 1024**3

STATUS_HEADERS = ("slot", "gpu", "profile", "weight", "memory", "util", "procs")


@click.group()
def gpu() -> None:
    """GPUs and their slots: whole GPUs and MIG instances, with GPU-equivalent weights.

    On a machine without an NVIDIA driver, ds01 shows its simulated DGX-A100 host
    (gpu.backend: auto); the first line of ``ds01 gpu status`` says which provider is in use.
    """


@gpu.command()
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Show every GPU slot: profile, weight, memory, utilisation and process count.

    A slot is a whole GPU (MIG off) or a MIG instance; its weight is its share of the GPU in
    GPU-equivalents, the unit of every GPU quota (a 2g.20gb on a 7-slice A100 weighs 2/7).
    """
    provider = _provider(state)
    try:
        gpus = provider.gpus()
        processes = _by_slot(provider.processes())
    except GpuProviderError as exc:
        fail(str(exc))
    if as_json:
        print_json(status_json(provider, gpus, processes))
        return
    click.echo(f"GPU provider: {provider.description}")
    rows = [slot_row(slot, processes[slot.uuid]) for g in gpus for slot in g.slots]
    print_table(rows, STATUS_HEADERS, shrinkable=[1, 2])


def _provider(state: CliState) -> GpuProvider:
    try:
        return state.runtime.gpu
    except GpuProviderError as exc:
        fail(str(exc))


def _by_slot(processes: Sequence[GpuProcess]) -> defaultdict[str, list[GpuProcess]]:
    grouped: defaultdict[str, list[GpuProcess]] = defaultdict(list)
    for proc in processes:
        grouped[proc.slot_uuid].append(proc)
    return grouped


# -- table --------------------------------------------------------------------------------------


def short_model(model: str) -> str:
    """``A100-SXM4-80GB`` for ``NVIDIA A100-SXM4-80GB``: the vendor is the same on every row."""
    return model.removeprefix("NVIDIA ").strip()


def memory_cell(used: int, total: int) -> str:
    return f"{used / GIB:.1f}/{total / GIB:.1f} GiB"


def slot_row(slot: GpuSlot, processes: Sequence[GpuProcess]) -> tuple[str, ...]:
    """One table row; later columns (owner, container) are added here."""
    return (
        slot.slot_id,
        short_model(slot.model),
        slot.profile or "full",
        f"{slot.weight:.2f}",
        memory_cell(slot.memory_used, slot.memory_total),
        "-" if slot.utilization is None else f"{slot.utilization:.0f}%",
        str(len(processes)),
    )


# -- JSON ---------------------------------------------------------------------------------------


def slot_json(slot: GpuSlot, processes: Sequence[GpuProcess]) -> dict[str, Any]:
    return {
        "slot_id": slot.slot_id,
        "uuid": slot.uuid,
        "legacy_uuid": slot.legacy_uuid,
        "kind": slot.kind,
        "profile": slot.profile,
        "compute_slices": slot.compute_slices,
        "total_slices": slot.total_slices,
        "weight": slot.weight,
        "memory_total": slot.memory_total,
        "memory_used": slot.memory_used,
        "utilization": slot.utilization,
        "processes": [{"pid": p.pid, "used_memory": p.used_memory} for p in processes],
    }


def gpu_json(gpu: Gpu, processes: dict[str, list[GpuProcess]]) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "model": gpu.model,
        "mig_enabled": gpu.mig_enabled,
        "total_slices": gpu.total_slices,
        "memory_total": gpu.memory_total,
        "memory_used": gpu.memory_used,
        "utilization": gpu.utilization,
        "power_watts": gpu.power_watts,
        "energy_joules": gpu.energy_joules,
        "slots": [slot_json(s, processes.get(s.uuid, [])) for s in gpu.slots],
    }


def status_json(
    provider: GpuProvider, gpus: Sequence[Gpu], processes: dict[str, list[GpuProcess]]
) -> dict[str, Any]:
    return {
        "provider": provider.name,
        "description": provider.description,
        "gpus": [gpu_json(g, processes) for g in gpus],
    }
