"""``ds01 config``: validate a configuration file, and explain a user's limits and policy.

``ds01 config show --user`` explains a user's effective limits, and with ``--origin`` the
lifecycle policy their containers get.
"""

from __future__ import annotations

import sys

import click
import yaml

from ds01_core.domain.config import (
    ORIGINS,
    ConfigError,
    LimitSet,
    build_config,
    plugin_selection,
    read_config_file,
    resolve_config_path,
)
from ds01_core.domain.config.checks import config_warnings
from ds01_core.domain.units import ByteSize, Duration, TimeLimit
from ds01_core.framework.manager import PluginStartupError, make_plugin_host
from ds01_core.transports.cli.output import json_option, print_json, print_table
from ds01_core.transports.cli.state import CliState, pass_state


@click.group()
def config() -> None:
    """Check the configuration file and show what it means."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@pass_state
def check(state: CliState, file: str | None) -> None:
    """Validate FILE (default: the active configuration file).

    Every problem is listed with its path in the file; the exit code is 0 when the file is
    valid and 2 when it is not. Values that are valid but will not act as written (a max_cpus
    above this host's CPUs) are warned about on standard error.
    """
    # lazy: the cycle's modules bring the docker SDK, ~100 ms on every ds01 start-up otherwise
    from ds01_core.cycle.pipeline import plan_cycle

    path = file or resolve_config_path(state.config_path)
    try:
        data = read_config_file(path)
        disabled, required, order = plugin_selection(data)
        host = make_plugin_host(
            disabled=disabled,
            required=required,
            order=order,
            load_entry_points=not state.no_plugins,
        )
        cfg = build_config(
            data,
            sections=host.config_sections(),
            source=path,
            ignore_sections=host.inactive_names(),
        )
        plan_cycle(host.hooks, cfg.cycle, path)  # the cycle's steps, as cycle: orders them
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except PluginStartupError as exc:
        click.echo(f"{path}: plugins: {exc}", err=True)
        sys.exit(2)
    limits = cfg.limits
    click.echo(
        f"{path}: OK ({len(limits.groups)} groups, {len(limits.users)} users, "
        f"{len(limits.overrides)} overrides, {len(host.active)} active plugins)"
    )
    for where, message in config_warnings(cfg):
        click.echo(f"warning: {where}: {message}", err=True)
    for record in host.records:
        if record.status == "failed":
            click.echo(f"warning: plugin {record.name!r} failed to load: {record.error}", err=True)


@config.command("show")
@click.option(
    "--user", "user", metavar="NAME", help="Show NAME's effective limits and their sources."
)
@click.option(
    "--origin",
    type=click.Choice(ORIGINS),
    help="With --user: the lifecycle policy NAME's containers of this origin get.",
)
@json_option
@pass_state
def show(state: CliState, user: str | None, origin: str | None, as_json: bool) -> None:
    """Show the effective configuration, or one user's effective limits.

    With --user, each limit is shown with where it came from: the built-in default, the file's
    defaults, the user's group, the user's own entry, or an override (until its expiry). With
    --origin as well, the lifecycle policy that user's containers of that origin get (idle
    timeout, maximum runtime, …), each value with its source: one of those, the lifecycle
    section, or the origin's own policy where it is stricter.
    """
    if origin is not None and user is None:
        raise click.UsageError("--origin needs --user: the policy depends on the user's limits")
    if user is None:
        data = state.call("config.show")
        if as_json:
            print_json(data)
        else:
            click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
        return
    data = state.call("config.limits", user=user, origin=origin)
    if as_json:
        print_json({k: v for k, v in data.items() if k != "high_demand"})
        return
    click.echo(f"user: {data['user']}   group: {data['group'] or '(none: defaults apply)'}")
    for line in data["group_explanations"]:
        click.echo(f"  {line}")
    rows = [
        (key, _shown(key, entry["value"]), entry["source"]) for key, entry in data["limits"].items()
    ]
    print_table(rows, ["limit", "value", "source"], shrinkable=[2])
    if origin is not None:
        click.echo(f"\nlifecycle policy for {data['user']}'s {origin} containers:")
        print_table(
            [(key, row["value"], row["source"]) for key, row in data["policy"].items()],
            ["policy", "value", "source"],
            shrinkable=[2],
        )
        demand = data["high_demand"]
        click.echo(
            f"idle_timeout is multiplied by {demand['factor']:g} while "
            f"{demand['share']:.0%} of all GPU-equivalents are allocated."
        )


def _shown(key: str, value: object) -> str:
    """A limit's JSON value as people write it in the file: sizes and durations in units."""
    if value is None:
        return "-"
    kind = _LIMIT_TYPES.get(key)
    if isinstance(value, int | float) and kind is not None:
        return str(kind(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _limit_types() -> dict[str, type]:
    """Limit keys whose values are sizes or durations, with the type that prints them."""
    import typing

    import attrs

    hints = typing.get_type_hints(LimitSet)
    found: dict[str, type] = {}
    for field in attrs.fields(LimitSet):
        for kind in (TimeLimit, Duration, ByteSize):
            if kind in typing.get_args(hints[field.name]) or hints[field.name] is kind:
                found[field.name] = kind
                break
    return found


_LIMIT_TYPES = _limit_types()
