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
    Other users' containers are shown as the server's privacy settings allow. A GPU whose
    last NVML reads failed gets a line "GPU N degraded: <call>: <error>" above the table, and
    a slot whose processes could not be read shows "?" processes (unknown, not none).
    """
    data = state.call("gpu.status")
    if as_json:
        print_json(data)
        return
    if not show_access(data.get("access")):
        return
    click.echo(f"GPU provider: {data['description']}")
    for g in data["gpus"]:
        if g.get("health") not in (None, "ok"):
            click.secho(f"GPU {g['index']} {g['health']}", fg="yellow")
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


@gpu.command()
@json_option
@pass_state
def health(state: CliState, as_json: bool) -> None:
    """Show each GPU's health: ok, degraded or unhealthy, why, since when, and whether drained.

    The daemon (ds01d) judges every GPU once per cycle from its error counters and sensors:
    uncorrected ECC errors, XID errors, a GPU fallen off the bus, failed row remapping (unhealthy);
    heat, pages waiting for retirement, other XIDs, failing reads (degraded). A drained GPU gets
    no new allocation (``gpu.health.drain``); what it holds stays. See docs/gpu-health.md.
    """
    data = state.call("gpu.health")
    if as_json:
        print_json(data)
        return
    if not data["gpus"]:
        click.echo(
            "No GPU health recorded yet: the daemon (ds01d) has not finished a full cycle with "
            "the GPUs readable (is it running? `systemctl status ds01d`)."
        )
        return
    if data["stale"]:
        click.secho(
            f"Stale: the daemon last judged the GPUs at {data['checked_at']} "
            "(is ds01d running, and are the GPUs available? `ds01 gpu status`)",
            fg="yellow",
            err=True,
        )
    rows: list[tuple[str, ...]] = []
    for g in data["gpus"]:
        since = _time(g["since"]).astimezone().strftime("%m-%d %H:%M") if g["since"] else "-"
        words = [f"{r['code']}: {r['detail']}" for r in g["reasons"]] or ["-"]
        drained = "yes" if g["drained"] else "no"
        rows.append((str(g["index"]), g["state"], drained, since, words[0]))
        rows += [("", "", "", "", more) for more in words[1:]]
    print_table(rows, ("gpu", "state", "drained", "since", "reasons"), shrinkable=[4])


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
        "?" if slot["processes"] is None else str(len(slot["processes"])),
        holder["user"] if holder else "-",
        container,
        since,
    )


# -- ds01 gpu selftest ---------------------------------------------------------------------------

SELFTEST_HEADERS = ("check", "subject", "verdict", "provider reads", "nvml answers")


@gpu.command()
@json_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=2.0,
    show_default=True,
    help="Seconds between the two readings (utilisation, GPM, energy).",
)
@pass_state
def selftest(state: CliState, as_json: bool, interval: float) -> None:
    """Check, read-only, what ds01's GPU provider reads against NVML's own answers (admins).

    Lists the GPUs, the MIG layout with NVML's indices and UUIDs, the processes per slot,
    utilisation or GPM read twice INTERVAL seconds apart, power, energy, ECC and clocks where
    supported, minor numbers, the calls NVML does not support, and nvidia-smi -L, with a verdict
    per check: ok, unsupported, failed: <error>, or differs: <what>. It never changes a GPU.
    The exit status is 0 when every check is ok or unsupported, 1 otherwise.
    """
    report: dict[str, Any] | None = None
    for record in state.stream("gpu.selftest", interval=interval):
        if "progress" in record:
            click.echo(f"selftest: {record['progress']}…", err=True)
        elif "report" in record:
            report = record["report"]
    if report is None:
        raise click.ClickException(
            "the GPU self-test ended without a report (see the service's log)"
        )
    if as_json:
        print_json(report)
    else:
        print_selftest(report)
    if not report["passed"]:
        raise SystemExit(1)


def print_selftest(report: dict[str, Any]) -> None:
    """The verdicts as a table, the MIG devices by NVML index, every failure and difference
    in full, notes, and the calls NVML does not support."""
    click.echo(
        f"GPU self-test ({report['backend']}), readings {report['interval']:g} s apart, "
        f"{report['calls']} NVML calls, none of them a setter"
    )
    checks = report["checks"]
    rows = [(c["check"], c["subject"], c["verdict"], c["provider"], c["nvml"]) for c in checks]
    print_table(rows, SELFTEST_HEADERS, shrinkable=[3, 4])
    if report["mig_layout"]:
        click.echo("\nMIG devices as NVML lists them:")
        print_table(
            [
                (
                    d["gpu"],
                    d["mig_index"],
                    d["gpu_instance_id"],
                    d["compute_instance_id"],
                    d["name"],
                    d["uuid"],
                )
                for d in report["mig_layout"]
            ],
            ("gpu", "mig index", "gi", "ci", "name", "uuid"),
            shrinkable=[4],
        )
    problems = [c for c in checks if c["verdict"] in ("failed", "differs")]
    if problems:
        click.echo("\nProblems:")
        for c in problems:
            click.echo(f"  {c['check']} {c['subject']}: {c['text']}")
    notes: dict[tuple[str, str], list[str]] = {}  # the same note on many GPUs: one line
    for c in checks:
        if c["verdict"] not in ("failed", "differs") and c["detail"]:
            notes.setdefault((c["check"], c["detail"]), []).append(c["subject"])
    if notes:
        click.echo("\nNotes:")
        for (check, detail), subjects in notes.items():
            click.echo(f"  {check} {', '.join(subjects)}: {detail}")
    unsupported = report["unsupported_calls"]
    if unsupported:
        click.echo(
            "\nNot supported by this NVML: "
            + ", ".join(f"{name} (x{count})" for name, count in unsupported.items())
        )
    counts = report["counts"]
    click.echo(
        f"\n{len(checks)} checks: {counts['ok']} ok, {counts['unsupported']} unsupported, "
        f"{counts['failed']} failed, {counts['differs']} differ"
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
