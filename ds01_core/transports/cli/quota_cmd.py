"""``ds01 quota``: your limits and what you use of them."""

from __future__ import annotations

from typing import Any

import click

from ds01_core.domain.units import format_bytes, format_duration
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state

_BYTES = ("memory", "memory_swap", "shm_size")


@click.command()
@click.option("--user", help="Another user's (admins).")
@json_option
@pass_state
def quota(state: CliState, user: str | None, as_json: bool) -> None:
    """Show your GPU quota: GPU-equivalents in use (per container) and left."""
    data = state.call("quota", user=user)
    if as_json:
        print_json(data)
        return
    render(data)


def render(data: dict[str, Any]) -> None:
    ge = data["gpu_equivalents"]
    limits = data["limits"]
    quota_value = ge["limit"]
    limit_text = "no limit" if quota_value is None else f"{quota_value:g}"
    left = "" if ge["left"] is None else f", {ge['left']:.2f} left"
    click.echo(
        f"{data['user']} ({data['group'] or 'no group'}): GPU {ge['in_use']:.2f} of "
        f"{limit_text} GPU-equivalents in use{left}  [{ge['source']}]"
    )
    if ge["allocations"]:
        print_table(
            [
                (
                    a["container"],
                    f"{a['weight']:.2f}",
                    len(a["slots"]),
                    "held after stop" if a["held_after_stop"] else "in use",
                )
                for a in ge["allocations"]
            ],
            ["container", "weight", "slots", "state"],
        )
    lines = data["resources"]
    if lines:
        click.echo()
        print_table(
            [
                (
                    line["resource"],
                    show(line["used"], line["unit"]),
                    show(line["limit"], line["unit"]),
                    ("OVER " if line["over"] else "") + line["detail"],
                )
                for line in lines
            ],
            ["resource", "used", "limit", "detail"],
            shrinkable=[3],
        )
    per_container = [
        f"{key}={format_bytes(int(limits[key])) if key in _BYTES else f'{limits[key]:g}'}"
        for key in ("max_cpus", "memory", "memory_swap", "shm_size", "pids_limit")
        if limits.get(key) is not None
    ]
    if per_container:
        click.echo(f"per container: {' '.join(per_container)}")


def show(value: float | None, unit: str) -> str:
    """A quota number in its unit, short."""
    if value is None:
        return "-"
    if unit == "bytes":
        return format_bytes(int(value))
    if unit == "bytes/s":
        return format_bytes(int(value)) + "/s"
    if unit in ("count", "ops/s"):
        return f"{int(value)}" + ("/s" if unit == "ops/s" else "")
    if unit == "seconds":
        return format_duration(value)
    return f"{value:.2f}"
