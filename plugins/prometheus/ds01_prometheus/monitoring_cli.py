"""``ds01 admin monitoring install``: Prometheus' scrape config and rules, the Alertmanager
example, VictoriaMetrics' arguments and Grafana's dashboards and provisioning written onto this host
(:mod:`ds01_prometheus.monitoring_install` decides what), root only: it writes under /etc and
/var/lib, which an admin who is not root cannot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ds01_core.api import fail, json_option, print_json
from ds01_prometheus.monitoring_install import (
    Directories,
    plan,
    promtool_check,
    record,
    reload_hints,
    write,
)

DEFAULTS = Directories()


@click.group("monitoring")
def monitoring() -> None:
    """Prometheus, Alertmanager and Grafana set up for ds01 (ds01-prometheus)."""


@monitoring.command("install")
@click.option(
    "--prometheus-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULTS.prometheus,
    show_default=True,
    help="prometheus.yml (jobs ds01 and dcgm) and rules/.",
)
@click.option(
    "--grafana-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULTS.grafana,
    show_default=True,
    help="Grafana's provisioning directory (datasources/, dashboards/).",
)
@click.option(
    "--dashboards-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULTS.dashboards,
    show_default=True,
    help="Where the dashboards' JSON goes (the provider points Grafana there).",
)
@click.option(
    "--alertmanager-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULTS.alertmanager,
    show_default=True,
    help="Where the Alertmanager example goes.",
)
@click.option(
    "--victoriametrics-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULTS.victoriametrics,
    show_default=True,
    help="Where VictoriaMetrics' ARGS file (victoria-metrics: retention, address) goes.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--force", is_flag=True, help="Also replace files an admin changed.")
@json_option
def install(
    prometheus_dir: Path,
    grafana_dir: Path,
    dashboards_dir: Path,
    alertmanager_dir: Path,
    victoriametrics_dir: Path,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Write ds01's monitoring files onto this host, then check them with promtool.

    A file that an admin changed since ds01 wrote it is kept (with a diff summary) unless
    --force. Says what to reload afterwards. Exits 1 when a file was kept or promtool
    found a problem.
    """
    if os.geteuid() != 0:
        fail(
            "`ds01 admin monitoring install` is for root, not for users or admins who are not "
            "root: it writes Prometheus', Alertmanager's, VictoriaMetrics' and Grafana's files "
            "under /etc and /var/lib; run it as root (sudo ds01 admin monitoring install)",
            2,
        )
    dirs = Directories(
        prometheus_dir, grafana_dir, dashboards_dir, alertmanager_dir, victoriametrics_dir
    )
    planned = plan(dirs, force=force)
    for each in planned:
        if not dry_run and each.writes:
            write(each)
        if not as_json:
            verb = _verb(each.status, dry_run)
            extra = f" ({each.diff})" if each.diff else ""
            click.echo(f"{verb:<28} {each.kind:<22} {each.path}{extra}")
    check: tuple[bool, str] | None = None
    if not dry_run:
        record(dirs, planned)
        check = promtool_check(dirs.prometheus / "prometheus.yml")
    kept = [each for each in planned if each.status == "kept"]
    hints = reload_hints(dirs)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "files": [each.to_json() for each in planned],
                "promtool": None if check is None else {"ok": check[0], "output": check[1]},
                "reload": hints,
            }
        )
    else:
        _summary(dry_run, kept, check, hints)
    if kept or (check is not None and not check[0]):
        raise SystemExit(1)


def _verb(status: str, dry_run: bool) -> str:
    done = {
        "new": "written",
        "update": "updated",
        "replace": "replaced (--force)",
        "same": "unchanged",
        "kept": "kept: changed by an admin",
    }[status]
    if dry_run and status in ("new", "update", "replace"):
        return {"new": "would write", "update": "would update", "replace": "would replace"}[status]
    return done


def _summary(
    dry_run: bool, kept: list[Any], check: tuple[bool, str] | None, hints: list[str]
) -> None:
    if kept:
        click.echo(
            f"{len(kept)} file(s) changed by an admin were left alone: compare them with "
            "ds01's (--dry-run shows which), then rerun with --force to replace them",
            err=True,
        )
    if dry_run:
        click.echo("dry run: nothing written")
        return
    if check is None:
        click.echo("promtool not found: the Prometheus configuration was not checked")
    elif check[0]:
        click.echo("promtool check config: ok")
    else:
        click.echo(f"promtool check config failed:\n{check[1]}", err=True)
    click.echo("Next:")
    for hint in hints:
        click.echo(f"  {hint}")


def add_to(cli: click.Group) -> None:
    """Add ``monitoring`` under ``admin`` (or at the top when there is no admin group)."""
    admin = cli.commands.get("admin")
    parent = admin if isinstance(admin, click.Group) else cli
    if parent.commands.get("monitoring") is not monitoring:
        parent.add_command(monitoring)
