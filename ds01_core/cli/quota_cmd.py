"""``ds01 quota``: your limits and what you use of them."""

from __future__ import annotations

import sqlite3

import attrs
import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.units import format_bytes


@click.command()
@click.option("--user", help="Another user's (admins).")
@json_option
@pass_state
def quota(state: CliState, user: str | None, as_json: bool) -> None:
    """Show your GPU quota: GPU-equivalents in use (per container) and left."""
    from ds01_core.allocation import Allocations
    from ds01_core.containers import caller_identity
    from ds01_core.user_limits import effective_limits
    from ds01_core.users import normalize_username

    me, admin = caller_identity()
    if user and normalize_username(user) != me and not admin:
        fail("only admins can see another user's quota", code=2)
    name = normalize_username(user) if user else me
    runtime = state.runtime
    now = runtime.now()
    limits = effective_limits(runtime, name, now=now)
    try:
        held = Allocations(runtime).live(user=name)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot read the state store ({exc}): run `sudo ds01 quota`")
    in_use = sum(a.weight for a in held)
    quota_value = limits.get("max_gpu_equivalents")
    data = {
        "user": name,
        "group": limits.group,
        "gpu_equivalents": {
            "in_use": round(in_use, 4),
            "limit": quota_value,
            "left": None if quota_value is None else round(max(0.0, quota_value - in_use), 4),
            "source": limits.values["max_gpu_equivalents"].source,
            "allocations": [
                {
                    "container": a.container_name or a.container,
                    "weight": round(a.weight, 4),
                    "slots": a.slot_uuids,
                    "held_after_stop": a.stopped_at is not None,
                }
                for a in held
            ],
        },
        "limits": {k: v.value for k, v in limits.values.items()},
    }
    lines = runtime.hooks.quota_usage(runtime, name, limits)
    data["resources"] = [attrs.asdict(line) for line in lines]
    if as_json:
        print_json(data)
        return
    ge = data["gpu_equivalents"]
    limit_text = "no limit" if quota_value is None else f"{quota_value:g}"
    left = "" if ge["left"] is None else f", {ge['left']:.2f} left"
    click.echo(
        f"{name} ({limits.group or 'no group'}): GPU {in_use:.2f} of {limit_text} "
        f"GPU-equivalents in use{left}  [{ge['source']}]"
    )
    if held:
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
    if lines:
        click.echo()
        print_table(
            [
                (
                    line.resource,
                    show(line.used, line.unit),
                    show(line.limit, line.unit),
                    ("OVER " if line.over else "") + line.detail,
                )
                for line in lines
            ],
            ["resource", "used", "limit", "detail"],
            shrinkable=[3],
        )
    per_container = [
        f"{key}={limits[key]}"
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
    return f"{value:.2f}"
