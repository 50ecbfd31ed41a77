"""``ds01 events`` as a command: filters, JSON, table, usage errors."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from ds01_core.cli import cli
from ds01_core.events import EventLog
from ds01_core.model import Event


def _setup(tmp_config):
    config = tmp_config()
    log = EventLog(config.parent / "log" / "events.jsonl")
    now = dt.datetime.now(dt.UTC)
    log.append(
        Event(
            "gpu.allocated",
            "alice",
            "mig",
            {"container": "train-1", "slots": ["5.1"]},
            timestamp=now - dt.timedelta(hours=3),
        )
    )
    log.append(
        Event(
            "gpu.released",
            "alice",
            "mig",
            {"container": "train-1"},
            timestamp=now - dt.timedelta(minutes=10),
        )
    )
    log.append(
        Event(
            "access.denied",
            "bob",
            "gateway",
            {"endpoint": "POST /containers/x/kill"},
            timestamp=now - dt.timedelta(minutes=5),
        )
    )
    return config, log


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), "events", *args])


def test_json_and_filters(tmp_config):
    config, _ = _setup(tmp_config)
    result = run(config, "--json")
    assert result.exit_code == 0, result.output
    assert [r["event_type"] for r in json.loads(result.output)] == [
        "gpu.allocated",
        "gpu.released",
        "access.denied",
    ]
    result = run(config, "--json", "--user", "alice", "--since", "1h")
    assert [r["event_type"] for r in json.loads(result.output)] == ["gpu.released"]
    result = run(config, "--json", "--type", "access.", "--limit", "1")
    assert [r["user"] for r in json.loads(result.output)] == ["bob"]
    result = run(config, "--json", "--container", "train-1", "--until", "1h")
    assert [r["event_type"] for r in json.loads(result.output)] == ["gpu.allocated"]


def test_table_and_warnings(tmp_config):
    config, log = _setup(tmp_config)
    with open(log.path, "a") as handle:
        handle.write("not json\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "events", "--type", "gpu."])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "TYPE", "USER", "SOURCE", "DETAILS"]
    assert "gpu.allocated" in lines[1] and "container=train-1" in lines[1]
    assert 'slots=["5.1"]' in lines[1]
    assert len(lines) == 3
    assert "not JSON, skipped" in result.stderr


def test_bad_time_is_a_usage_error(tmp_config):
    config, _ = _setup(tmp_config)
    result = run(config, "--since", "yesterday-ish")
    assert result.exit_code == 2
    assert "expected an ISO date or time" in result.output
    assert run(config, "--limit", "0").exit_code == 2
