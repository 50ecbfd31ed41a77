"""``ds01 setup``: the first-login wizard, every question also a flag, safe to run again.

It checks the account (groups, limits, the GPU quota in words), points Docker at the gateway,
checks the SSH key VS Code Remote needs, lists what the user already has (their images, exactly,
through the gateway; their containers; their projects), offers the first project and shows
(or sets) the notification channels. What it changed is recorded in ``~/.ds01/setup.json``:
a second run reports and changes only what a flag asks for.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ds01_core.api import (
    CliState,
    Invalid,
    ServiceError,
    fail,
    pass_state,
    print_json,
    utc_text,
)
from ds01_projects import setup_steps
from ds01_projects.findings import Finding, ok, problems, render, summary, warn
from ds01_projects.findings import fail as failed
from ds01_projects.settings import load_settings

RECORD = Path(".ds01") / "setup.json"


def _channels(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise click.BadParameter("name at least one channel, e.g. terminal,email")
    return names


@click.command("setup")
@click.option(
    "--yes",
    "-y",
    "--non-interactive",
    "yes",
    is_flag=True,
    help="Ask nothing: take the defaults (on a first run: do the recommended changes).",
)
@click.option("--project", metavar="NAME", help="Create your first project NAME.")
@click.option("--no-project", is_flag=True, help="Do not offer a first project.")
@click.option("--base", metavar="KEY", help="The catalogue base of the first project.")
@click.option("--gpus", type=int, help="GPUs the first project's container asks for.")
@click.option(
    "--launch/--no-launch",
    default=None,
    help="Start the first project's container now (default: ask; --yes: no).",
)
@click.option(
    "--docker-host/--no-docker-host",
    default=None,
    help="Write DOCKER_HOST (the gateway) into ~/.profile and ~/.bashrc (default: on a first "
    "run yes).",
)
@click.option(
    "--ssh-key-file",
    metavar="PUB",
    help="Add this PUBLIC key (a .pub file) to ~/.ssh/authorized_keys for VS Code Remote.",
)
@click.option(
    "--notify-channels",
    metavar="A,B",
    help="Keep exactly these notification channels on (terminal, container_file, email, "
    "webhook; among those the admin enabled).",
)
@click.option("--check", "check_only", is_flag=True, help="Only report: change and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="What each step found, as JSON.")
@pass_state
def setup(
    state: CliState,
    yes: bool,
    project: str | None,
    no_project: bool,
    base: str | None,
    gpus: int | None,
    launch: bool | None,
    docker_host: bool | None,
    ssh_key_file: str | None,
    notify_channels: str | None,
    check_only: bool,
    as_json: bool,
) -> None:
    """Set up your account for ds01 (first login), or check it again.

    Steps: your account and limits; Docker through the ds01 gateway; the SSH key VS Code
    Remote needs; the images, containers and projects you have; your first project; how ds01
    tells you things. Each prints ✓ (fine), ! (worth doing, with how) or ✗ (broken). The exit
    status is 1 when a step is broken, 2 for a wrong flag. A second run only reports, unless a
    flag asks for a change; --check never changes anything.
    """
    if project and no_project:
        fail("choose one of --project NAME and --no-project", 2)
    if check_only:
        changing = [
            flag
            for flag, given in (
                ("--project", project),
                ("--docker-host", docker_host),
                ("--launch", launch),
                ("--ssh-key-file", ssh_key_file),
                ("--notify-channels", notify_channels),
            )
            if given
        ]
        if changing:
            fail(f"--check changes nothing: leave out {', '.join(changing)}", 2)
        yes, no_project, docker_host = True, True, False
    if gpus is not None and gpus < 0:
        fail(f"--gpus must be 0 or more, got {gpus}", 2)
    try:
        channels = _channels(notify_channels)
    except click.BadParameter as exc:
        fail(f"--notify-channels: {exc.message}", 2)
    settings = load_settings(state)
    if base is not None and base not in settings.catalogue:
        keys = ", ".join(settings.catalogue) or "none (the admin has no catalogue)"
        fail(f"--base: {base!r} is not in the catalogue; the keys are: {keys}", 2)
    home = Path(os.environ.get("HOME") or settings.home)
    record = _read_record(home)
    interactive = not yes and not as_json and sys.stdin.isatty()
    ctx = setup_steps.SetupContext(
        state=state,
        settings=settings,
        home=home,
        interactive=interactive,
        first_run=not record and not check_only,
        confirm=_confirm,
        ask=_ask,
    )
    if not as_json:
        intro = "First-time setup" if ctx.first_run else "Checking your setup again"
        click.echo(f"{intro} for {settings.user} (ds01 setup; --help lists the flags)\n")
    findings: list[Finding] = []

    def step(found: list[Finding]) -> None:
        findings.extend(found)
        if not as_json:
            render(found)

    step(setup_steps.account(ctx))
    step(setup_steps.docker(ctx, docker_host))
    step(setup_steps.ssh(ctx, ssh_key_file))
    step(setup_steps.existing(ctx))
    step(first_project(ctx, record, project, no_project, base, gpus, launch))
    step(setup_steps.notifications(ctx, channels))
    saved = None if check_only else _write_record(home, record, findings)
    if saved is not None:
        findings.append(saved)
        if not as_json:
            render([saved])
    counts = summary(findings)
    if as_json:
        print_json(
            {
                "user": settings.user,
                "first_run": ctx.first_run,
                "record": str(home / RECORD),
                "findings": [f.to_json() for f in findings],
                "summary": counts,
            }
        )
    else:
        click.echo(
            f"\n{counts['ok']} fine, {counts['warn']} to look at, {counts['fail']} broken. "
            "Run `ds01 setup` again any time; `ds01 doctor` checks your setup."
        )
    if problems(findings):
        raise SystemExit(1)


def first_project(
    ctx: setup_steps.SetupContext,
    record: dict[str, Any],
    name: str | None,
    no_project: bool,
    base: str | None,
    gpus: int | None,
    launch: bool | None,
) -> list[Finding]:
    """Step 5: offer the first project, unless told not to or the user has one already."""
    if no_project:
        return [ok("project", "no project offered (--no-project)")]
    have = ctx.seen.get("projects") or []
    if name is None:
        if have or record.get("project"):
            return [ok("project", "you have a project already (`ds01 project list`)")]
        if (
            ctx.interactive
            and ctx.first_run
            and ctx.confirm("Create your first project now?", True)
        ):
            name = ctx.ask("Project name", "my-first-project")
        else:
            bases = ", ".join(f"{k} ({e.ref})" for k, e in ctx.settings.catalogue.items())
            return [
                warn(
                    "project",
                    "no project yet",
                    "`ds01 project init NAME` makes one (a Dockerfile, a dev container, a "
                    "workspace); `ds01 project launch NAME` starts it on a GPU",
                    details=(f"bases: {bases}",) if bases else (),
                )
            ]
    return _init_and_launch(ctx, record, name, base, gpus, launch)


def _init_and_launch(
    ctx: setup_steps.SetupContext,
    record: dict[str, Any],
    name: str,
    base: str | None,
    gpus: int | None,
    launch: bool | None,
) -> list[Finding]:
    from ds01_projects import project_ops

    try:
        made = project_ops.init(ctx.state, ctx.settings, name, base=base, gpus=gpus)
    except Invalid as exc:
        fail(exc.message, 2)
    except ServiceError as exc:
        return [failed("project", f"project {name}: {exc.message}")]
    found = [ok("project", made.message, changed=made.changed)]
    record["project"] = name
    if launch is None:
        launch = ctx.interactive and ctx.confirm(f"Start {name}'s container now?", True)
    if not launch:
        found.append(ok("project", f"start it with: ds01 project launch {name}"))
        return found
    try:
        started = project_ops.launch(ctx.state, ctx.settings, name)
    except ServiceError as exc:
        return [*found, failed("project", f"launch {name}: {exc.message}")]
    return [*found, ok("project", started.message, changed=started.changed)]


# -- the record ---------------------------------------------------------------------------------


def _read_record(home: Path) -> dict[str, Any]:
    try:
        data = json.loads((home / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(home: Path, record: dict[str, Any], findings: list[Finding]) -> Finding | None:
    """Add this run to ``~/.ds01/setup.json`` (0600, in a 0700 ``~/.ds01``)."""
    now = utc_text(dt.datetime.now(dt.UTC))
    changes = [{"at": now, "check": f.check, "what": c} for f in findings for c in f.changed]
    data = {
        "version": 1,
        "first_run": record.get("first_run") or now,
        "last_run": now,
        "runs": int(record.get("runs") or 0) + 1,
        "project": record.get("project"),
        "changes": [*(record.get("changes") or []), *changes][-100:],
        "last_summary": summary(findings),
    }
    path = home / RECORD
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(".setup.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        return failed("record", f"cannot write {path}: {exc.strerror}", f"check {path.parent}")
    return None


def _confirm(question: str, default: bool) -> bool:
    from rich.prompt import Confirm

    return bool(Confirm.ask(question, default=default))


def _ask(question: str, default: str) -> str:
    from rich.prompt import Prompt

    return str(Prompt.ask(question, default=default))
