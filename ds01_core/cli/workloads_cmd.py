"""``ds01 workloads``: every container and host GPU process, with its owner, in one list."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.detection.inventory import read_snapshot, workload_json
from ds01_core.model import Workload
from ds01_core.units import format_duration

ORIGINS = ("ds01", "devcontainer", "compose", "docker", "host", "unknown")


def live_inventory(state: CliState) -> list[Workload]:
    """Detect now (root only: it reads every process's /proc entries and the Docker socket)."""
    from ds01_core.detection.host_processes import ProcessDetector
    from ds01_core.pipeline import detect

    runtime = state.runtime
    # one look, no history: report GPU processes at first sight (the key is the built-in
    # gpu-process-detector plugin's)
    runtime.memo(
        "gpu-process-detector",
        lambda: ProcessDetector(
            confirm_cycles=1, ignored_names=runtime.config.gpu.ignored_process_names
        ),
    )
    errors: list[str] = []
    workloads = detect(runtime, errors)
    for error in errors:
        click.echo(f"warning: {error}", err=True)
    return workloads


def _slot_names(state: CliState) -> dict[str, str]:
    try:
        return {s.uuid: s.slot_id for s in state.runtime.gpu.slots()}
    except Exception:
        return {}


def _provider_line(state: CliState) -> str:
    try:
        provider = state.runtime.gpu
        slots = provider.slots()
    except Exception as exc:
        return f"unavailable ({exc})"
    gpus = len({s.gpu_index for s in slots})
    return f"{gpus} GPUs, {len(slots)} slots — {provider.description}"


def _age(moment: dt.datetime | None, now: dt.datetime) -> str:
    return "-" if moment is None else format_duration((now - moment).total_seconds())


def _rows(workloads: Sequence[Workload], slots: dict[str, str], wide: bool) -> list[list[str]]:
    now = dt.datetime.now(dt.UTC)
    rows = []
    for w in workloads:
        gpus = "all" if w.unrestricted_gpu else ",".join(slots.get(u, u[:12]) for u in w.gpu_slots)
        row = [w.name, w.kind, w.origin, w.owner, w.status, gpus or "-"]
        if wide:
            started = w.started_at if w.status == "running" else None
            row += [
                w.owner_source,
                _age(w.created_at, now),
                _age(started, now),
                ",".join(str(p) for p in w.pids) or "-",
                (w.image or w.cmdline or "-"),
                w.id[:12],
                ",".join(f for f in w.flags if f != "partial") or "-",
                format_duration(w.idle_seconds) if w.idle_seconds else "-",
                w.last_active_signal or "-",
            ]
        rows.append(row)
    return rows


def _by_user(workloads: Sequence[Workload]) -> list[dict[str, object]]:
    users: dict[str, dict[str, object]] = {}
    for w in workloads:
        entry = users.setdefault(
            w.owner,
            {"owner": w.owner, "containers": 0, "running": 0, "processes": 0, "gpu_slots": []},
        )
        if w.kind == "container":
            entry["containers"] = int(entry["containers"]) + 1  # type: ignore[call-overload]
            if w.status == "running":
                entry["running"] = int(entry["running"]) + 1  # type: ignore[call-overload]
        else:
            entry["processes"] = int(entry["processes"]) + 1  # type: ignore[call-overload]
        slots = entry["gpu_slots"]
        assert isinstance(slots, list)
        slots.extend(s for s in w.gpu_slots if s not in slots)
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
    help="Read the daemon's latest snapshot even as root (users always do).",
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

    As root the inventory is computed live. Other users read the snapshot that ds01d writes
    after every cycle; its age is shown.
    """
    taken_at = None
    if os.geteuid() == 0 and not snapshot:
        items = live_inventory(state)
    else:
        path = state.runtime.config.paths.snapshot_path
        try:
            taken_at, items = read_snapshot(path)
        except FileNotFoundError:
            fail(f"no inventory snapshot at {path}: is ds01d running? (root sees a live one)")
        except (ValueError, KeyError) as exc:
            fail(f"cannot read the inventory snapshot {path}: {exc}")
    if user:
        from ds01_core.users import normalize_username

        items = [w for w in items if w.owner == normalize_username(user)]
    if gpu_only:
        items = [w for w in items if w.gpu_slots or w.unrestricted_gpu]
    if origin:
        items = [w for w in items if w.origin in origin]
    items.sort(key=lambda w: (w.owner, w.kind, w.name))
    if as_json:
        data = _by_user(items) if by_user else [workload_json(w) for w in items]
        print_json(
            {
                "source": "snapshot" if taken_at else "live",
                "taken_at": taken_at,
                "workloads" if not by_user else "users": data,
            }
        )
        return
    if taken_at is not None:
        age = (dt.datetime.now(dt.UTC) - taken_at).total_seconds()
        click.echo(f"snapshot from {format_duration(age)} ago ({taken_at:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        click.echo(f"GPUs: {_provider_line(state)}")
    with_gpu = sum(1 for w in items if w.gpu_slots or w.unrestricted_gpu)
    click.echo(f"{len(items)} workload(s), {with_gpu} with GPU access")
    if by_user:
        rows = [
            (u["owner"], u["containers"], u["running"], u["processes"], len(u["gpu_slots"]))  # type: ignore[arg-type]
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
    print_table(_rows(items, _slot_names(state), wide), headers, shrinkable=shrink)
