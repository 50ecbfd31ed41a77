"""``ds01 admin doctor``: what still lets a non-admin reach the real engine or the GPUs."""

from __future__ import annotations

import click

from ds01_core import doctor as checks
from ds01_core.cli import CliState, pass_state
from ds01_core.cli.output import json_option, print_json


@click.command()
@json_option
@pass_state
def doctor(state: CliState, as_json: bool) -> None:
    """Check that only root and admins can reach the Docker engine, that the gateway and the
    users' DOCKER_HOST are in place, and that the GPU device nodes are closed to users without
    a bare-metal grant. Each problem says how to fix it; the exit status is 1 if there is one.
    """
    findings = checks.run_doctor(state.runtime, checks.DEFAULT_HOST)
    problems = [f for f in findings if not f.ok]
    if as_json:
        print_json(
            {
                "ok": not problems,
                "problems": len(problems),
                "findings": [f.to_json() for f in findings],
            }
        )
    else:
        for f in findings:
            click.echo(f"{'ok' if f.ok else 'FAIL':<5} {f.check:<14} {f.subject}: {f.message}")
            if f.fix:
                click.echo(f"{'':<20} fix: {f.fix}")
        click.echo(f"{len(problems)} problem(s) found" if problems else "no problems found")
    if problems:
        raise SystemExit(1)
