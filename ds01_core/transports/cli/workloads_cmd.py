"""``ds01 workloads``: every container and host GPU process, with its owner, in one list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click

from ds01_core.domain.units import format_duration
from ds01_core.services.workloads import ORIGINS
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


def _age(moment: dt.datetime | None, now: dt.datetime) -> str:
    return "-" if moment is None else format_duration((now - moment).total_seconds())


def _rows(workloads: Sequence[dict[str, Any]], wide: bool) -> list[list[str]]:
    now = dt.datetime.now(dt.UTC)
    rows = []
    for w in workloads:
        gpus = "all" if w["unrestricted_gpu"] else ",".join(w["gpu_slot_ids"])
        row = [w["name"], w["kind"], w["origin"], w["owner"], w["status"], gpus or "-"]
        if wide:
            started = w["started_at"] if w["status"] == "running" else None
            row += [
                w["owner_source"] or "-",
                _age(_time(w["created_at"]), now),
                _age(_time(started), now),
                ",".join(str(p) for p in w["pids"]) or "-",
                (w["image"] or w["cmdline"] or "-"),
                w["id"][:12] or "-",
                ",".join(f for f in w["flags"] if f != "partial") or "-",
                format_duration(w["idle_seconds"]) if w["idle_seconds"] else "-",
                w["last_active_signal"] or "-",
            ]
        rows.append(row)
    return rows


def _time(text: str | None) -> dt.datetime | None:
    return None if not text else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _by_user(workloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    for w in workloads:
        entry = users.setdefault(
            w["owner"],
            {"owner": w["owner"], "containers": 0, "running": 0, "processes": 0, "gpu_slots": []},
        )
        if w["kind"] == "container":
            entry["containers"] += 1
            if w["status"] == "running":
                entry["running"] += 1
        else:
            entry["processes"] += 1
        slots = entry["gpu_slots"]
        slots.extend(s for s in w["gpu_slots"] if s not in slots)
    return [users[name] for name in sorted(users)]


@click.command()
@click.option("--user", "user", metavar="NAME", help="Only NAME's workloads.")
@click.option("--by-user", is_flag=True, help="One line per user: counts and GPU slots.")
@click.option("--gpu-only", is_flag=True, help="Only workloads that use or can reach a GPU.")
@click.option(
    "--origin",
    type=click.Choice(ORIGINS),
    multiple=True,
    help="Only these origins (repeatable).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="More columns: owner source, age, PIDs, image, id, flags, idle time, last active signal.",
)
@click.option(
    "--snapshot",
    is_flag=True,
    help="Read the daemon's latest snapshot instead of looking now (admins).",
)
@json_option
@pass_state
def workloads(
    state: CliState,
    user: str | None,
    by_user: bool,
    gpu_only: bool,
    origin: tuple[str, ...],
    wide: bool,
    snapshot: bool,
    as_json: bool,
) -> None:
    """List every GPU workload — containers of any origin and bare host processes — with its
    owner and how the owner was found.

    The inventory is computed live by the ds01 service. Other users' workloads are shown as
    the server's privacy settings allow (owners by default, not their container names).
    """
    data = state.call(
        "workloads",
        user=user,
        gpu_only=gpu_only,
        origin=list(origin) or None,
        snapshot=snapshot,
    )
    for message in data["warnings"]:
        click.echo(f"warning: {message}", err=True)
    items = data["workloads"]
    taken_at = _time(data["taken_at"])
    if as_json:
        listing = (
            _by_user(items)
            if by_user
            else [{k: v for k, v in w.items() if k != "gpu_slot_ids"} for w in items]
        )
        print_json(
            {
                "source": data["source"],
                "taken_at": data["taken_at"],
                "workloads" if not by_user else "users": listing,
            }
        )
        return
    if taken_at is not None:
        age = (dt.datetime.now(dt.UTC) - taken_at).total_seconds()
        click.echo(f"snapshot from {format_duration(age)} ago ({taken_at:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        click.echo(f"GPUs: {data['gpus']}")
    with_gpu = sum(1 for w in items if w["gpu_slots"] or w["unrestricted_gpu"])
    click.echo(f"{len(items)} workload(s), {with_gpu} with GPU access")
    if by_user:
        rows = [
            (u["owner"], u["containers"], u["running"], u["processes"], len(u["gpu_slots"]))
            for u in _by_user(items)
        ]
        print_table(rows, ["user", "containers", "running", "processes", "gpu slots"])
        return
    headers = ["name", "kind", "origin", "owner", "status", "gpus"]
    if wide:
        headers += [
            "owner source",
            "age",
            "up",
            "pids",
            "image/cmd",
            "id",
            "flags",
            "idle",
            "last active",
        ]
    shrink = [0, 10] if wide else [0]
    print_table(_rows(items, wide), headers, shrinkable=shrink)
