"""``ds01 admin gpu``: release the GPUs from ds01's NVML sessions (MIG switch, reset), resume."""

from __future__ import annotations

from typing import Any

import click

from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.group("gpu")
def admin_gpu() -> None:
    """ds01's hold on the GPUs: release it for a MIG-mode switch or a GPU reset, then resume.

    \b
    ds01 admin gpu release --minutes 20 --reason "MIG on GPU 3"
    nvidia-smi -i 3 -mig 1 && nvidia-smi -i 3 -r
    ds01 admin gpu resume
    """


@admin_gpu.command("release")
@click.option("--minutes", type=float, default=30.0, show_default=True, help="How long at most.")
@click.option("--reason", default="", help="Why (kept in the audit log, shown to users).")
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for every ds01 process to let go.",
)
@json_option
@pass_state
def release_cmd(state: CliState, minutes: float, reason: str, wait: float, as_json: bool) -> None:
    """Close every ds01 NVML session; nothing is allocated until `resume` or --minutes pass."""
    done = state.call(
        "admin.gpu.release", minutes=minutes, reason=reason, wait=wait, client_timeout=wait + 60
    )
    if as_json:
        print_json(done)
        return
    click.echo(f"GPUs released until {done['released_until']}: ds01 allocates nothing meanwhile")
    if not done["ds01_let_go"]:
        click.secho(
            "ds01 processes still hold a GPU device; they let go at their next look (a few "
            "seconds): check with `ds01 admin gpu holders`",
            fg="yellow",
            err=True,
        )
    show_holders(done["holders"])


@admin_gpu.command("resume")
@pass_state
def resume_cmd(state: CliState) -> None:
    """End the release now: ds01 opens NVML afresh (new handles after a reset)."""
    done = state.call("admin.gpu.resume")
    click.echo("GPUs resumed" if done["resumed"] else "no release was in force")


@admin_gpu.command("holders")
@json_option
@pass_state
def holders_cmd(state: CliState, as_json: bool) -> None:
    """ds01's GPU state, and every process with /dev/nvidia* open (a reset needs none)."""
    data = state.call("admin.gpu.holders")
    if as_json:
        print_json(data)
        return
    access = data["access"]
    click.echo(
        f"ds01 GPU access: {access['state']}" + (f": {access['error']}" if access["error"] else "")
    )
    show_holders(data["holders"])


def show_holders(holders: list[dict[str, Any]]) -> None:
    if not holders:
        click.echo("no process holds a GPU device")
        return
    click.echo("processes holding GPU devices (a GPU reset needs them stopped):")
    print_table(
        [
            (h["pid"], h["name"], "yes" if h["ds01"] else "", " ".join(h["devices"]))
            for h in holders
        ],
        ["pid", "name", "ds01", "devices"],
    )
