"""``ds01 gpu``: the GPU inventory as ds01 sees it (GPUs, MIG slots, their weights, processes)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.gpu.base import GpuProvider, GpuProviderError
from ds01_core.model import Allocation, Gpu, GpuProcess, GpuSlot
from ds01_core.units import format_duration

GIB = 1024**3

STATUS_HEADERS = (
    "slot",
    "gpu",
    "profile",
    "weight",
    "memory",
    "util",
    "procs",
    "owner",
    "container",
    "since",
)


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
    holders = _holders(state)
    if as_json:
        print_json(status_json(provider, gpus, processes, holders))
        return
    click.echo(f"GPU provider: {provider.description}")
    rows = [
        slot_row(slot, processes[slot.uuid], holders.get(slot.uuid))
        for g in gpus
        for slot in g.slots
    ]
    print_table(rows, STATUS_HEADERS, shrinkable=[1, 8])


@gpu.command()
@json_option
@pass_state
def queue(state: CliState, as_json: bool) -> None:
    """Show the requests waiting for a GPU (``ds01 container create --wait``), in order."""
    from ds01_core.gpu_queue import waiting

    try:
        tickets = waiting(state.runtime.state.db)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot read the state store ({exc}): run `sudo ds01 gpu queue`")
    if as_json:
        print_json(
            [
                {
                    "position": i,
                    "ticket": t.ticket,
                    "user": t.user,
                    "container": t.container_name,
                    "request": t.request,
                    "waiting_since": t.enqueued_at,
                }
                for i, t in enumerate(tickets, start=1)
            ]
        )
        return
    now = state.runtime.now()
    print_table(
        [
            (
                i,
                t.user,
                t.container_name,
                _describe_request(t.request),
                format_duration((now - t.enqueued_at).total_seconds()),
            )
            for i, t in enumerate(tickets, start=1)
        ],
        ["pos", "user", "container", "request", "waiting"],
    )


def _describe_request(request: dict[str, Any]) -> str:
    if request.get("mig_profile"):
        return f"{request.get('count', 1)} x {request['mig_profile']}"
    if request.get("full_gpu"):
        return f"{request.get('count', 1)} full GPU(s)"
    return f"{request.get('count', 1)} slot(s)"


def _holders(state: CliState) -> dict[str, Allocation]:
    """Slot UUID → the allocation holding it; empty if the state store cannot be read."""
    from ds01_core.allocation import Allocations

    try:
        return {u: a for a in Allocations(state.runtime).live() for u in a.slot_uuids}
    except Exception:  # a user without access to the root-only store: no owner column
        return {}


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
    """``71/80G``: short, so that the owner columns fit an 80-column terminal."""
    return f"{used / GIB:.0f}/{total / GIB:.0f}G"


def slot_row(
    slot: GpuSlot, processes: Sequence[GpuProcess], holder: Allocation | None = None
) -> tuple[str, ...]:
    """One table row: the slot, its use, and who holds it since when."""
    since = "-"
    if holder is not None:
        since = holder.allocated_at.astimezone().strftime("%m-%d %H:%M")
        if holder.stopped_at is not None:
            since += " (stopped)"
    return (
        slot.slot_id,
        short_model(slot.model),
        slot.profile or "full",
        f"{slot.weight:.2f}",
        memory_cell(slot.memory_used, slot.memory_total),
        "-" if slot.utilization is None else f"{slot.utilization:.0f}%",
        str(len(processes)),
        holder.user if holder else "-",
        (holder.container_name or holder.container[:12]) if holder else "-",
        since,
    )


# -- JSON ---------------------------------------------------------------------------------------


def slot_json(
    slot: GpuSlot, processes: Sequence[GpuProcess], holder: Allocation | None = None
) -> dict[str, Any]:
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
        "allocation": None
        if holder is None
        else {
            "user": holder.user,
            "container": holder.container_name or holder.container,
            "container_id": holder.container if holder.bound else None,
            "since": holder.allocated_at,
            "held_after_stop": holder.stopped_at is not None,
        },
    }


def gpu_json(
    gpu: Gpu, processes: dict[str, list[GpuProcess]], holders: dict[str, Allocation] | None = None
) -> dict[str, Any]:
    holders = holders or {}
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
        "slots": [slot_json(s, processes.get(s.uuid, []), holders.get(s.uuid)) for s in gpu.slots],
    }


def status_json(
    provider: GpuProvider,
    gpus: Sequence[Gpu],
    processes: dict[str, list[GpuProcess]],
    holders: dict[str, Allocation] | None = None,
) -> dict[str, Any]:
    return {
        "provider": provider.name,
        "description": provider.description,
        "gpus": [gpu_json(g, processes, holders) for g in gpus],
    }
