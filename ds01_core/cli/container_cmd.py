"""``ds01 container``: create, start, stop, remove, list, stats, logs and exec your containers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import fail, json_option, print_json, print_table
from ds01_core.containers import ContainerError, ContainerService, CreateRequest, caller_identity
from ds01_core.docker import DockerError
from ds01_core.units import ByteSize, Duration, format_bytes

as_option = click.option(
    "--as",
    "as_user",
    metavar="USER",
    help="Act for USER (admins only).",
)


def service(state: CliState, as_user: str | None) -> ContainerService:
    """The container service for the caller, or for ``--as USER`` when the caller is an admin."""
    from ds01_core.users import normalize_username

    user, admin = caller_identity()
    if as_user:
        if not admin:
            fail(f"--as is for admins; you are {user}", code=2)
        user = normalize_username(as_user)
    return ContainerService(state.runtime, user)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ds01's and Docker's failures into one clear line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ContainerError as exc:
            fail(str(exc))
        except DockerError as exc:
            if exc.status is None and "Permission denied" in str(exc):
                fail("cannot reach Docker: run ds01 container commands with sudo")
            fail(f"Docker: {exc}")

    return wrapper


class DurationParam(click.ParamType):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return float(Duration.parse(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SizeParam(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return int(ByteSize.parse(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.group()
def container() -> None:
    """Your containers, each with exactly the GPU slots allocated to it."""


@container.command()
@click.argument("name")
@click.option("--image", required=True, help="Image to run (must be on the server).")
@click.option(
    "--gpus", type=click.IntRange(min=1), help="Number of GPU slots (MIG or full, per policy)."
)
@click.option("--mig", "mig", metavar="PROFILE", help="One MIG instance of PROFILE, e.g. 2g.20gb.")
@click.option("--full-gpu", is_flag=True, help="A whole GPU.")
@click.option("--cpu-only", is_flag=True, help="No GPU.")
@click.option(
    "--min-memory", type=SizeParam(), help="Each slot has at least this much GPU memory (e.g. 20g)."
)
@click.option(
    "--workspace", type=click.Path(file_okay=False), help="Your directory to mount at /workspace."
)
@click.option("--project", help="A project name, recorded as a label.")
@click.option(
    "--wait",
    "wait",
    type=DurationParam(),
    is_flag=False,
    flag_value=3600.0,
    default=None,
    help="If no GPU is free, queue for one (first come, first served) up to this long [1h].",
)
@click.argument("command", nargs=-1)
@as_option
@json_option
@pass_state
@handles_errors
def create(
    state: CliState,
    name: str,
    image: str,
    gpus: int | None,
    mig: str | None,
    full_gpu: bool,
    cpu_only: bool,
    min_memory: int | None,
    workspace: str | None,
    project: str | None,
    wait: float | None,
    command: tuple[str, ...],
    as_user: str | None,
    as_json: bool,
) -> None:
    """Create container NAME from IMAGE with GPU slots allocated to you.

    Without --gpus/--mig/--full-gpu/--cpu-only one GPU slot is allocated. The container gets
    exactly those slots (never all GPUs) and carries them in its ds01.gpu.* labels.
    """
    if sum([bool(gpus), bool(mig), full_gpu, cpu_only]) > 1:
        raise click.UsageError("choose one of --gpus, --mig, --full-gpu, --cpu-only")
    svc = service(state, as_user)
    if wait:
        click.echo(f"waiting up to {Duration(wait)} for a GPU if none is free…", err=True)
    created = svc.create(
        CreateRequest(
            name=name,
            image=image,
            gpus=gpus,
            mig=mig,
            full_gpu=full_gpu,
            cpu_only=cpu_only,
            min_memory=min_memory,
            workspace=workspace,
            project=project,
            command=command,
            wait=wait,
        )
    )
    if created.warning:
        click.echo(f"warning: {created.warning}", err=True)
    if as_json:
        print_json(
            {
                "id": created.id,
                "name": created.name,
                "slots": created.slots,
                "uuids": created.uuids,
                "warning": created.warning,
            }
        )
        return
    gpus_text = ", ".join(created.slots) or "none"
    click.echo(f"created {created.name} ({created.id[:12]}) for {svc.user}; GPU slots: {gpus_text}")
    click.echo(f"start it with: ds01 container start {created.name}")
    if created.uuids and not created.device_requests:
        click.echo(
            "note: no NVIDIA runtime here: the slots are in labels and NVIDIA_VISIBLE_DEVICES only",
            err=True,
        )


@container.command()
@click.argument("name")
@as_option
@pass_state
@handles_errors
def start(state: CliState, name: str, as_user: str | None) -> None:
    """Start your container NAME."""
    workload = service(state, as_user).start(name)
    click.echo(f"started {workload.name}")


@container.command()
@click.argument("name")
@click.option(
    "--timeout",
    "-t",
    type=DurationParam(),
    help="Grace before SIGKILL [allocation.stop_timeout, 30s].",
)
@as_option
@pass_state
@handles_errors
def stop(state: CliState, name: str, timeout: float | None, as_user: str | None) -> None:
    """Stop your container NAME; its GPU stays held for allocation.gpu_hold_after_stop."""
    svc = service(state, as_user)
    workload = svc.stop(name, timeout)
    hold = state.runtime.config.allocation.gpu_hold_after_stop
    note = f"; its GPU is held for {hold}" if workload.gpu_slots else ""
    click.echo(f"stopped {workload.name}{note}")


@container.command()
@click.argument("name")
@click.option("--force", "-f", is_flag=True, help="Stop it first if it runs.")
@as_option
@pass_state
@handles_errors
def remove(state: CliState, name: str, force: bool, as_user: str | None) -> None:
    """Remove your container NAME and release its GPU at once."""
    workload = service(state, as_user).remove(name, force)
    click.echo(f"removed {workload.name}")


@container.command("list")
@click.option("--all", "-a", "show_all", is_flag=True, help="Include stopped containers.")
@as_option
@json_option
@pass_state
@handles_errors
def list_(state: CliState, show_all: bool, as_user: str | None, as_json: bool) -> None:
    """List your containers."""
    from ds01_core.detection.inventory import workload_json

    svc = service(state, as_user)
    items = [w for w in svc.mine() if show_all or w.status == "running"]
    items.sort(key=lambda w: w.name)
    if as_json:
        print_json([workload_json(w) for w in items])
        return
    slots = {s.uuid: s.slot_id for s in state.runtime.gpu.slots()}
    rows = [
        (
            w.name,
            w.status,
            w.origin,
            ",".join(slots.get(u, u[:12]) for u in w.gpu_slots) or "-",
            w.image or "-",
            w.id[:12],
        )
        for w in items
    ]
    print_table(rows, ["name", "status", "origin", "gpus", "image", "id"], shrinkable=[0, 4])


@container.command()
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="name=, id=, label=K[=V], status=, origin= (repeatable).",
)
@as_option
@json_option
@pass_state
@handles_errors
def stats(state: CliState, filters: tuple[str, ...], as_user: str | None, as_json: bool) -> None:
    """CPU, memory and pids of your running containers (one sample)."""
    from ds01_core.containers import parse_filter

    for text in filters:
        try:
            parse_filter(text)
        except ContainerError as exc:
            raise click.BadParameter(str(exc), param_hint="--filter") from None
    svc = service(state, as_user)
    rows = svc.stats(filters)
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            (
                r["name"],
                f"{r['cpu_percent']:.1f}%",
                format_bytes(r["memory_bytes"]),
                format_bytes(r["memory_limit_bytes"]),
                r["pids"] or "-",
            )
            for r in rows
        ],
        ["name", "cpu", "memory", "limit", "pids"],
    )


@container.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--tail", default="all", help="Only the last N lines.")
@as_option
@pass_state
@handles_errors
def logs(state: CliState, name: str, follow: bool, tail: str, as_user: str | None) -> None:
    """Print the output of your container NAME."""
    out = sys.stdout.buffer
    for chunk in service(state, as_user).logs(name, follow=follow, tail=tail):
        out.write(chunk)
        out.flush()


@container.command("exec")
@click.argument("name")
@click.argument("command", nargs=-1, required=True)
@as_option
@pass_state
@handles_errors
def exec_(state: CliState, name: str, command: tuple[str, ...], as_user: str | None) -> None:
    """Run COMMAND in your running container NAME and print its output."""
    code, output = service(state, as_user).exec(name, command)
    click.echo(output, nl=False)
    sys.exit(code)
