"""The ``ds01 admin cgroups`` commands: they render what the ``cgroups.check`` operation
(:mod:`ds01_cgroups.services`) returns, in-process for root and through the API socket for
everyone else; the operation refuses non-admins."""

from __future__ import annotations

import click

from ds01_core.api import CliState, json_option, pass_state, print_json, print_table


@click.group("cgroups")
def cgroups() -> None:
    """Per-user cgroups and their limits (ds01-cgroups)."""


@cgroups.command("check")
@click.option("--user", "users", multiple=True, help="Only this user (repeatable).")
@json_option
@pass_state
def check(state: CliState, users: tuple[str, ...], as_json: bool) -> None:
    """Compare every user's cgroup on disk with the configuration.

    Lists, per user, each limit file (or systemd unit) that differs, and the user's containers
    that are not under the user's cgroup. Exits 1 when anything differs.
    """
    reports = state.call("cgroups.check", users=list(users) or None)
    if as_json:
        print_json(reports)
    else:
        rows = []
        for report in reports:
            problems = [_mismatch(m) for m in report["mismatches"]]
            problems += [
                f"container outside: {o['name']} ({o['parent'] or 'default'})"
                for o in report["outside_cgroup"]
            ]
            for index, problem in enumerate(problems or ["ok"]):
                rows.append(
                    (
                        report["user"] if index == 0 else "",
                        report["cgroup"] if index == 0 else "",
                        problem,
                    )
                )
        print_table(rows, ["user", "cgroup", "status"], shrinkable=[2])
    if any(not r["ok"] for r in reports):
        raise SystemExit(1)


def _mismatch(m: dict[str, str | None]) -> str:
    """As ``Mismatch.__str__`` says it: ``file [device]: expected 'x', found 'y'``."""
    where = f"{m['file']} [{m['device']}]" if m["device"] else str(m["file"])
    actual = "missing" if m["actual"] is None else repr(m["actual"])
    return f"{where}: expected {m['expected']!r}, found {actual}"


def add_to(cli: click.Group) -> None:
    """Add ``cgroups`` under ``admin`` (or at the top when there is no admin group)."""
    admin = cli.commands.get("admin")
    parent = admin if isinstance(admin, click.Group) else cli
    if parent.commands.get("cgroups") is not cgroups:
        parent.add_command(cgroups)
