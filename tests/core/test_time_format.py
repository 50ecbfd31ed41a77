"""One time format: every time ds01 writes — JSON output, audit events, the state store — is
``model.utc_text``'s ``2026-11-23T04:00:00Z`` (or with microseconds), never ``+00:00``; and times
written with ``+00:00`` by older versions are still read."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from click.testing import CliRunner

from ds01_core.domain.model import GpuRequest, utc_text
from ds01_core.domain.state.allocations import Allocations
from ds01_core.domain.state.overrides import active_overrides
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli

#: anything that looks like a date with a time, however it is spelled
TIMEISH = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d[0-9:.]*(?:Z|[+-]\d\d:?\d\d)?")
#: the one format (utc_text)
ONE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")


def times_in(value: Any) -> Iterator[str]:
    """Every time-like text inside ``value`` (nested JSON, or a text)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from times_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from times_in(item)
    elif isinstance(value, str):
        yield from TIMEISH.findall(value)


def state_times(db_path: str) -> Iterator[tuple[str, str]]:
    """(table.column, text) for every time-like text in every table of the store."""
    db = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            for row in cursor:
                for name, cell in zip(names, row, strict=True):
                    if isinstance(cell, str):
                        for text in TIMEISH.findall(cell):
                            yield f"{table}.{name}", text
    finally:
        db.close()


def ds01(config, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_events_and_the_state_store_use_one_format(tmp_config):
    config = tmp_config({"limits": {"defaults": {"max_gpu_equivalents": 2}}})
    unknown = "--allow-unknown-user"
    ds01(
        config,
        *("admin", "override", "set", "bob", "memory=8g", "--expires", "2099-01-01"),
        *("--reason", "deadline", "--approved-by", "prof", unknown),
    )
    ds01(config, "admin", "override", "remove", "--user", "bob", "--key", "memory")
    ds01(
        config,
        *("admin", "exempt", "set", "--user", "carol", "--expires", "3d"),
        *("--reason", "thesis", unknown),
    )
    runtime = load_runtime(str(config), no_plugins=True)
    allocations = Allocations(runtime)
    granted = allocations.allocate(GpuRequest(user="dave", container="train", count=1))
    allocations.release([granted.allocation.id], "done")
    runtime.close()

    outputs = {
        "override list": ds01(config, "admin", "override", "list", "--all", "--json"),
        "exempt list": ds01(config, "admin", "exempt", "list", "--json"),
        "config show": ds01(config, "config", "show", "--user", "bob", "--json"),
        "events": ds01(config, "events", "--json"),
    }
    found: list[tuple[str, str]] = []
    for where, text in outputs.items():
        found += [(where, t) for t in times_in(json.loads(text))]
    found += list(state_times(str(runtime.config.paths.state_db_path)))
    for line in runtime.config.paths.event_log_path.read_text().splitlines():
        found += [("event log", t) for t in times_in(json.loads(line))]

    wheres = {where.split(".")[0] for where, _ in found}
    # each kind of writer was exercised: a check of nothing would pass
    assert {"events", "event log", "override list", "exempt list"} <= wheres, wheres
    assert {"overrides", "grants", "allocations"} <= wheres, wheres
    assert [(where, t) for where, t in found if not ONE.fullmatch(t)] == []


def test_times_written_with_an_offset_by_older_versions_are_still_read(tmp_config):
    """State stores written before the one format hold ``+00:00``; they read as the same time."""
    config = tmp_config()
    ds01(
        config,
        *("admin", "override", "set", "bob", "memory=8g", "--expires", "2099-01-01"),
        *("--reason", "deadline", "--approved-by", "prof", "--allow-unknown-user"),
    )
    runtime = load_runtime(str(config), no_plugins=True)
    db = runtime.state.db
    expires = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    (stored,) = [r[0] for r in db.execute("SELECT expires FROM overrides")]
    assert stored == utc_text(expires) == "2099-01-01T00:00:00Z"
    db.execute("UPDATE overrides SET expires = ?", ("2099-01-01T00:00:00+00:00",))
    now = dt.datetime(2098, 1, 1, tzinfo=dt.UTC)
    assert [o.expires for o in active_overrides(db, now)] == [expires]
    runtime.close()
