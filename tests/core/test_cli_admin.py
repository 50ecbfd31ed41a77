"""``ds01 admin override``: set, list, apply, expire, remove — all in the store and the log."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.limits import resolve_limits
from ds01_core.domain.state.overrides import active_overrides
from ds01_core.framework.runtime import load_runtime
from ds01_core.transports.cli import cli


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_override_lifecycle(tmp_config):
    config = tmp_config({"limits": {"defaults": {"max_gpu_equivalents": 1}}})
    result = run(
        config,
        "admin",
        "override",
        "set",
        "Alice@EXAMPLE.org",
        "max_gpu_equivalents=2.5",
        "memory=64g",
        "--expires",
        "2099-01-01",
        "--reason",
        "ICML deadline",
        "--approved-by",
        "prof",
        "--allow-unknown-user",  # no such account here: this test is about the name's form
    )
    assert result.exit_code == 0, result.output
    listing = json.loads(run(config, "admin", "override", "list", "--json").output)
    assert [(o["user"], o["key"], o["value"], o["active"]) for o in listing] == [
        ("alice", "max_gpu_equivalents", 2.5, True),
        ("alice", "memory", "64g", True),
    ]
    shown = json.loads(run(config, "config", "show", "--user", "alice", "--json").output)
    entry = shown["limits"]["max_gpu_equivalents"]
    assert entry["value"] == 2.5
    assert (
        entry["source"] == "override until 2099-01-01T00:00:00Z (ICML deadline; approved by prof)"
    )

    runtime = load_runtime(str(config))
    later = dt.datetime(2099, 1, 2, tzinfo=dt.UTC)  # expired: stops applying by itself
    limits = resolve_limits(
        runtime.config,
        "alice",
        now=later,
        extra_overrides=active_overrides(runtime.state.db, later),
    )
    assert limits["max_gpu_equivalents"] == 1

    removed = run(config, "admin", "override", "remove", "--user", "alice", "--key", "memory")
    assert removed.exit_code == 0 and "removed override(s) 2" in removed.output
    listing = json.loads(run(config, "admin", "override", "list", "--json").output)
    assert [o["key"] for o in listing] == ["max_gpu_equivalents"]
    everything = json.loads(run(config, "admin", "override", "list", "--all", "--json").output)
    assert len(everything) == 2
    types = [e["event_type"] for e in EventLog(config.parent / "log" / "events.jsonl").read()]
    assert types == ["override.set", "override.removed"]


def test_bad_overrides_are_usage_errors(tmp_config):
    config = tmp_config()
    bad_value = run(
        config,
        "admin",
        "override",
        "set",
        "bob",
        "max_gpu_equivalents=two",
        "--expires",
        "3d",
        "--reason",
        "x",
    )
    assert bad_value.exit_code == 2
    assert "max_gpu_equivalents: expected a number, got 'two'" in bad_value.output
    unknown = run(
        config, "admin", "override", "set", "bob", "gpus=2", "--expires", "3d", "--reason", "x"
    )
    assert unknown.exit_code == 2 and "unknown limit 'gpus'" in unknown.output
    zero = run(
        config,
        "admin",
        "override",
        "set",
        "bob",
        "pids_limit=0",
        "--expires",
        "3d",
        "--reason",
        "x",
    )
    assert zero.exit_code == 2 and "must be greater than 0" in zero.output
    past = run(
        config,
        "admin",
        "override",
        "set",
        "bob",
        "pids_limit=10",
        "--expires",
        "2020-01-01",
        "--reason",
        "x",
    )
    assert past.exit_code == 2 and "is in the past" in past.output
    no_date = run(
        config,
        "admin",
        "override",
        "set",
        "bob",
        "pids_limit=10",
        "--expires",
        "someday",
        "--reason",
        "x",
    )
    assert no_date.exit_code == 2 and "expected a date" in no_date.output
    assert run(config, "admin", "override", "remove").exit_code == 2
