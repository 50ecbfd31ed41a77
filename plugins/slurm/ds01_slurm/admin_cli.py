"""``ds01 admin slurm config``: show or write the Slurm configuration ds01 generates."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ds01_core.api import CliState, fail, pass_state, print_json

#: file name → (the generated part, its mode)
FILES = {
    "gres.conf": ("gres_conf", 0o644),
    "slurm.conf.ds01": ("slurm_conf", 0o644),
    "sacctmgr-ds01.sh": ("sacctmgr", 0o755),
}


@click.group("slurm")
def slurm_admin() -> None:
    """Slurm and ds01 together (admins)."""


@slurm_admin.command("config")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write gres.conf, slurm.conf.ds01 and sacctmgr-ds01.sh here instead of printing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_state
def slurm_config(state: CliState, output_dir: Path | None, as_json: bool) -> None:
    """The Slurm configuration for this server's GPUs and ds01's groups (admins).

    gres.conf lists each GPU and MIG instance in ds01's order (GRES index i is ds01's GPU i);
    the slurm.conf fragment sets cons_tres, fair share, PrivateData and cgroups and ends with
    this node's Gres= line; the sacctmgr script makes one account per ds01 group.
    """
    data = state.call("slurm.generate_config")
    if output_dir is not None:
        written = write_files(output_dir, data)
        if as_json:
            print_json({**data, "written": [str(p) for p in written]})
        else:
            say_next(data, written)
        return
    if as_json:
        print_json(data)
        return
    for heading, key in (
        ("gres.conf", "gres_conf"),
        ("slurm.conf: this node", "node_line"),
        ("slurm.conf fragment", "slurm_conf"),
        ("sacctmgr script", "sacctmgr"),
    ):
        click.echo(f"==> {heading} <==")
        click.echo(data[key].rstrip("\n"))
        click.echo()


def write_files(directory: Path, data: dict[str, Any]) -> list[Path]:
    """The three files under ``directory`` (made if missing), as the calling admin."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, (key, mode) in FILES.items():
            path = directory / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(data[key])
            tmp.chmod(mode)
            os.replace(tmp, path)
            written.append(path)
    except OSError as exc:
        fail(
            f"cannot write into {directory}: {exc.strerror or exc}; choose a directory you can write"
        )
    return written


def say_next(data: dict[str, Any], written: list[Path]) -> None:
    for path in written:
        click.echo(f"wrote {path}")
    gres, fragment, script = written
    click.echo(
        f"""
Next, on node {data["node"]}:
  1. copy {gres} to gres.conf beside slurm.conf (e.g. /etc/slurm/gres.conf)
  2. in slurm.conf, set the node's line to (keep its CPUs=/RealMemory=):
       {data["node_line"].splitlines()[-1]}
     and merge what you want of {fragment} (it explains each line)
  3. drain the node, then restart slurmd there and run `scontrol reconfigure`
     (a changed GRES count needs slurmctld restarted too)
  4. with slurmdbd: sh {script}
  5. check: ds01 admin doctor"""
    )


def add_admin_commands(cli: click.Group) -> None:
    """``slurm config`` under ``ds01 admin`` (at the top when there is no admin group)."""
    admin = cli.commands.get("admin")
    parent = admin if isinstance(admin, click.Group) else cli
    if parent.commands.get("slurm") is not slurm_admin:
        parent.add_command(slurm_admin)
