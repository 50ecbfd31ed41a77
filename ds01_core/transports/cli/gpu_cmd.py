"""``ds01 gpu``: the GPU inventory as ds01 sees it (GPUs, MIG slots, their weights, holders)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ds01_core.domain.units import format_duration
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state

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
    """Show every GPU slot: profile, weight, memory, utilisation, process count and holder.

    A slot is a whole GPU (MIG off) or a MIG instance; its weight is its share of the GPU in
    GPU-equivalents, the unit of every GPU quota (a 2g.20gb on a 7-slice A100 weighs 2/7).
    Other users' containers are shown as the server's privacy settings allow.
    """
    data = state.call("gpu.status")
    if as_json:
        print_json(data)
        return
    if not show_access(data.get("access")):
        return
    click.echo(f"GPU provider: {data['description']}")
    rows = [slot_row(slot) for g in data["gpus"] for slot in g["slots"]]
    print_table(rows, STATUS_HEADERS, shrinkable=[1, 8])


@gpu.command()
@json_option
@pass_state
def queue(state: CliState, as_json: bool) -> None:
    """Show the requests waiting for a GPU (``ds01 container create --wait``), in order."""
    tickets = state.call("gpu.queue")
    if as_json:
        print_json(tickets)
        return
    now = dt.datetime.now(dt.UTC)
    print_table(
        [
            (
                t["position"],
                t["user"],
                t["container"] or "-",
                describe_request(t["request"]),
                format_duration((now - _time(t["waiting_since"])).total_seconds()),
            )
            for t in tickets
        ],
        ["pos", "user", "container", "request", "waiting"],
    )


def describe_request(request: dict[str, Any]) -> str:
    if request.get("mig_profile"):
        return f"{request.get('count', 1)} x {request['mig_profile']}"
    if request.get("full_gpu"):
        return f"{request.get('count', 1)} full GPU(s)"
    return f"{request.get('count', 1)} slot(s)"


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def short_model(model: str) -> str:
    """``A100-SXM4-80GB`` for ``NVIDIA A100-SXM4-80GB``: the vendor is the same on every row."""
    return model.removeprefix("NVIDIA ").strip()


def memory_cell(used: int, total: int) -> str:
    """``71/80G``: short, so that the owner columns fit an 80-column terminal."""
    return f"{used / GIB:.0f}/{total / GIB:.0f}G"


def slot_row(slot: dict[str, Any]) -> tuple[str, ...]:
    """One table row from a slot's JSON form: the slot, its use, and who holds it since when."""
    holder = slot["allocation"]
    since = "-"
    if holder is not None:
        since = _time(holder["since"]).astimezone().strftime("%m-%d %H:%M")
        if holder["held_after_stop"]:
            since += " (stopped)"
    container = "-"
    if holder is not None:
        container = holder["container"] or "-"
        if holder["container_id"] and container == holder["container_id"]:
            container = container[:12]
    return (
        slot["slot_id"],
        short_model(slot["model"]),
        slot["profile"] or "full",
        f"{slot['weight']:.2f}",
        memory_cell(slot["memory_used"], slot["memory_total"]),
        "-" if slot["utilization"] is None else f"{slot['utilization']:.0f}%",
        str(len(slot["processes"])),
        holder["user"] if holder else "-",
        container,
        since,
    )


# -- the provider's state (unavailable, released) ------------------------------------------------


def show_access(access: dict[str, Any] | None) -> bool:
    """Say loudly (on stderr) when the GPUs cannot be used now; False then (no table follows).

    ``ds01 gpu status`` exits 0 either way: the answer is the state, and ``--json`` carries it
    as ``access.state``.
    """
    if access is None or access.get("state") in ("available", "not_open"):
        return True
    if access["state"] == "released":
        click.secho("GPUs RELEASED: ds01 holds no NVML session now", fg="yellow", err=True)
        click.echo(f"  {access['error']}", err=True)
        return False
    click.secho("GPUs UNAVAILABLE: nothing is allocated until NVML answers", fg="red", err=True)
    click.echo(f"  error:      {access['error']}", err=True)
    if access.get("since"):
        click.echo(f"  since:      {access['since']}", err=True)
    if access.get("retry_in") is not None:
        click.echo(f"  next retry: in {access['retry_in']:.0f} s", err=True)
    return False
