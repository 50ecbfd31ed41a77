"""``ds01 container``: create, start, stop, remove, list, stats, logs and exec your containers."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from ds01_core.domain.units import ByteSize, Duration, format_bytes
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

as_option = click.option(
    "--as",
    "as_user",
    metavar="USER",
    help="Act for USER (admins only).",
)


#: ``ctx.meta`` key of the environment entries plugin flags (:func:`add_create_env_flag`) add
EXTRA_ENV = "ds01.container_create.env"


def add_create_env_flag(cli: click.Group, flag: str, entry: str, help: str) -> None:
    """Give ``ds01 container create`` a flag ``flag`` (``--no-mlflow``) that sets the
    environment entry ``entry`` (``DS01_MLFLOW=off``) in the new container, as if the user had
    written ``--env entry``; for a plugin's ``add_cli_commands``, whose ``prepare_container``
    then reads the entry from the create body's ``Env`` (the same entry ``docker run -e`` and
    the REST API's ``env`` give, so every create path has the same switch).

    :raises ValueError: ``entry`` is not ``KEY=VALUE`` or ``cli`` has no ``container create``.
    """
    if not _ENV_KEY.match(entry.partition("=")[0]) or "=" not in entry:
        raise ValueError(f"{entry!r} is not an environment entry KEY=VALUE")
    group = cli.commands.get("container")
    command = group.commands.get("create") if isinstance(group, click.Group) else None
    if command is None:
        raise ValueError("the ds01 CLI has no `container create` command")
    if any(flag in getattr(p, "opts", ()) for p in command.params):
        return  # added already (the CLI built again in the same process)

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta.setdefault(EXTRA_ENV, []).append(entry)

    command.params.append(
        click.Option([flag], is_flag=True, expose_value=False, callback=remember, help=help)
    )


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
    "--env",
    "-e",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an environment variable in the container (repeatable).",
)
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
    env: tuple[str, ...],
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
    for entry in env:
        if not _ENV_KEY.match(entry.partition("=")[0]) or "=" not in entry:
            raise click.UsageError(f"--env {entry!r}: write it as KEY=VALUE")
    entries = [*env, *click.get_current_context().meta.get(EXTRA_ENV, [])]
    if wait:
        click.echo(f"waiting up to {Duration(wait)} for a GPU if none is free…", err=True)
    created = state.call(
        "containers.create",
        client_timeout=None if wait else 600.0,
        name=name,
        image=image,
        gpus=gpus,
        mig=mig,
        full_gpu=full_gpu,
        cpu_only=cpu_only,
        min_memory=min_memory,
        workspace=os.path.abspath(os.path.expanduser(workspace)) if workspace else None,
        project=project,
        env=entries or None,
        command=list(command) or None,
        wait=wait,
        user=as_user,
    )
    if created["warning"]:
        click.echo(f"warning: {created['warning']}", err=True)
    if as_json:
        print_json({k: created[k] for k in ("id", "name", "slots", "uuids", "warning")})
        return
    gpus_text = ", ".join(created["slots"]) or "none"
    click.echo(
        f"created {created['name']} ({created['id'][:12]}) for {created['user']}; "
        f"GPU slots: {gpus_text}"
    )
    click.echo(f"start it with: ds01 container start {created['name']}")
    if created["uuids"] and not created["device_requests"]:
        click.echo(
            "note: no NVIDIA runtime here: the slots are in labels and NVIDIA_VISIBLE_DEVICES only",
            err=True,
        )


@container.command()
@click.argument("name")
@as_option
@pass_state
def start(state: CliState, name: str, as_user: str | None) -> None:
    """Start your container NAME."""
    done = state.call("containers.start", name=name, user=as_user)
    click.echo(f"started {done['name']}")


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
def stop(state: CliState, name: str, timeout: float | None, as_user: str | None) -> None:
    """Stop your container NAME; its GPU stays held for allocation.gpu_hold_after_stop."""
    done = state.call(
        "containers.stop", client_timeout=None, name=name, grace=timeout, user=as_user
    )
    note = f"; its GPU is held for {done['gpu_held_for']}" if done["gpu_held_for"] else ""
    click.echo(f"stopped {done['name']}{note}")


@container.command()
@click.argument("name")
@click.option("--force", "-f", is_flag=True, help="Stop it first if it runs.")
@as_option
@pass_state
def remove(state: CliState, name: str, force: bool, as_user: str | None) -> None:
    """Remove your container NAME and release its GPU at once."""
    done = state.call(
        "containers.remove", client_timeout=None, name=name, force=force, user=as_user
    )
    click.echo(f"removed {done['name']}")


@container.command("list")
@click.option("--all", "-a", "show_all", is_flag=True, help="Include stopped containers.")
@as_option
@json_option
@pass_state
def list_(state: CliState, show_all: bool, as_user: str | None, as_json: bool) -> None:
    """List your containers."""
    items = state.call("containers.list", all=show_all, user=as_user)
    if as_json:
        print_json([{k: v for k, v in w.items() if k != "gpu_slot_ids"} for w in items])
        return
    rows = [
        (
            w["name"],
            w["status"],
            w["origin"],
            ",".join(w["gpu_slot_ids"]) or "-",
            w["image"] or "-",
            w["id"][:12],
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
def stats(state: CliState, filters: tuple[str, ...], as_user: str | None, as_json: bool) -> None:
    """CPU, memory and pids of your running containers (one sample)."""
    rows = state.call("containers.stats", filter=list(filters) or None, user=as_user)
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
def logs(state: CliState, name: str, follow: bool, tail: str, as_user: str | None) -> None:
    """Print the output of your container NAME."""
    out = sys.stdout.buffer
    for chunk in state.stream("containers.logs", name=name, follow=follow, tail=tail, user=as_user):
        out.write(chunk)
        out.flush()


@container.command("exec")
@click.argument("name")
@click.argument("command", nargs=-1, required=True)
@as_option
@pass_state
def exec_(state: CliState, name: str, command: tuple[str, ...], as_user: str | None) -> None:
    """Run COMMAND in your running container NAME and print its output."""
    done = state.call(
        "containers.exec", client_timeout=None, name=name, command=list(command), user=as_user
    )
    click.echo(done["output"], nl=False)
    sys.exit(done["exit_code"])
