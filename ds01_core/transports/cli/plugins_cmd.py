"""``ds01 plugins``: every plugin, where it comes from, what it implements, whether it runs.

With ``--cycle``: the daemon cycle's steps in the order they run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from ds01_core.domain.config import (
    ConfigError,
    plugin_selection,
    read_config_file,
    resolve_config_path,
    structure_section,
)
from ds01_core.domain.config.cycle import CycleConfig
from ds01_core.framework.manager import PluginHost, PluginStartupError, make_plugin_host
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.command()
@click.option(
    "--cycle",
    "show_cycle",
    is_flag=True,
    help="The daemon cycle's steps instead: order, provider, what each does (cycle.order, "
    "cycle.disabled).",
)
@json_option
@pass_state
def plugins(state: CliState, show_cycle: bool, as_json: bool) -> None:
    """List plugins with distribution, version, hooks and status.

    Status is one of: active, disabled (by plugins.disabled), failed (with the error). The
    listing works even when the configuration file is invalid, to help find out why.

    With --cycle, list the steps of the daemon's cycle in the order they run, each with the
    core or plugin that provides it and whether it also runs after a Docker event; steps in
    cycle.disabled are shown without a place. A cycle section that does not fit the steps is
    reported (exit 1) and the default order is shown.
    """
    path = resolve_config_path(state.config_path)
    try:
        data = read_config_file(path)
    except ConfigError:
        data = {}
    disabled, required, order = plugin_selection(data)
    startup_error = None
    try:
        host = make_plugin_host(
            disabled=disabled, order=order, load_entry_points=not state.no_plugins
        )
    except PluginStartupError as exc:
        raise click.ClickException(str(exc)) from None
    if show_cycle:
        _show_cycle(host, data, path, order, as_json)
        return
    for record in host.records:
        record.required = record.name in required
    missing = [name for name in required if host.record(name) is None]
    if as_json:
        print_json(
            {
                "plugins": [r.to_json() for r in host.records],
                "missing_required": missing,
            }
        )
    else:
        rows = [
            (
                r.name + (" *" if r.required else ""),
                r.distribution,
                r.version,
                r.status,
                ", ".join(r.hooks) or "-",
            )
            for r in host.records
        ]
        print_table(rows, ["plugin", "distribution", "version", "status", "hooks"], shrinkable=[4])
        for r in host.records:
            if r.error:
                click.echo(f"{r.name}: {r.error}", err=True)
        for name in missing:
            click.echo(f"{name}: required but not installed", err=True)
        if any(r.required for r in host.records):
            click.echo("* required by plugins.required")
    if missing or any(r.required and r.status == "failed" for r in host.records):
        startup_error = "a required plugin is missing or failed"
    if startup_error:
        raise SystemExit(1)


def _show_cycle(
    host: PluginHost, data: Mapping[str, Any], path: str, order: Sequence[str], as_json: bool
) -> None:
    # lazy: the cycle's modules bring the docker SDK, ~100 ms on every ds01 start-up otherwise
    from ds01_core.cycle.pipeline import CyclePlan, plan_cycle

    section, found = structure_section(data.get("cycle"), CycleConfig, "cycle")
    errors = [str(problem) for problem in found]
    plan: CyclePlan | None = None
    try:
        plan = plan_cycle(host.hooks, section or CycleConfig(), path)
    except ConfigError as exc:
        errors += [str(problem) for problem in exc.problems]
    if plan is None or found:
        plan = plan_cycle(host.hooks, CycleConfig(), path)
    errors += plan.problems + [str(failure) for failure in plan.failures]
    rank = {name: i for i, name in enumerate(order)}
    ranked = sorted(host.active, key=lambda r: rank.get(r.name, len(rank)))

    def implementers(hook: str | None) -> list[str]:
        return [r.name for r in ranked if hook in r.hooks] if hook else []

    if as_json:
        print_json(
            {
                "steps": [
                    {
                        "position": a.position,
                        "name": a.step.name,
                        "provider": a.step.provider,
                        "enabled": a.enabled,
                        "partial": a.step.partial,
                        "default_position": a.default_position,
                        "needs": list(a.step.needs),
                        "description": a.step.description,
                        "hook": a.step.hook,
                        "plugins": implementers(a.step.hook),
                    }
                    for a in plan.steps
                ],
                "errors": errors,
            }
        )
    else:
        rows = []
        for a in plan.steps:
            plugins = implementers(a.step.hook)
            rows.append(
                (
                    a.position or "-",
                    a.step.name,
                    a.step.provider,
                    "runs" if a.enabled else "disabled",
                    "yes" if a.step.partial else "-",
                    a.step.description + (f" [{', '.join(plugins)}]" if plugins else ""),
                )
            )
        print_table(
            rows,
            ["#", "step", "provided by", "status", "on events", "what it does"],
            shrinkable=[5],
        )
        for error in errors:
            click.echo(f"cycle: {error}", err=True)
    if errors:
        raise SystemExit(1)
