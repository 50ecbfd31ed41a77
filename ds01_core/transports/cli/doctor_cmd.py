"""``ds01 admin doctor``: what still lets a non-admin reach the real engine or the GPUs."""

from __future__ import annotations

import click

from ds01_core.transports.cli.output import json_option, print_json
from ds01_core.transports.cli.state import CliState, pass_state


@click.command()
@json_option
@pass_state
def doctor(state: CliState, as_json: bool) -> None:
    """Check that only root and admins can reach the Docker engine, that the gateway and the
    users' DOCKER_HOST are in place, and that the GPU device nodes are closed to users without
    a bare-metal grant. Each problem says how to fix it; the exit status is 1 if there is one.
    """
    data = state.call("admin.doctor")
    if as_json:
        print_json(data)
    else:
        for f in data["findings"]:
            mark = "ok" if f["ok"] else "FAIL"
            click.echo(f"{mark:<5} {f['check']:<14} {f['subject']}: {f['message']}")
            if f["fix"]:
                click.echo(f"{'':<20} fix: {f['fix']}")
        problems = data["problems"]
        click.echo(f"{problems} problem(s) found" if problems else "no problems found")
    if data["problems"]:
        raise SystemExit(1)
