"""``ds01 events`` as a command: filters, JSON, table, usage errors."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from click.testing import CliRunner

from ds01_core.domain.audit_log import EventLog
from ds01_core.domain.model import Event
from ds01_core.transports.cli import cli


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


@pytest.fixture
def utc_plus_5(monkeypatch):
    monkeypatch.setenv("TZ", "XXX-05")  # POSIX form: UTC+5, no tz database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_without_offset_are_local_like_the_table(tmp_config, utc_plus_5):
    config, log = _setup(tmp_config)
    released = log.query(type_prefix="gpu.released")[0]
    shown = dt.datetime.fromisoformat(released["timestamp"].replace("Z", "+00:00")).astimezone()
    table = run(config, "--type", "gpu.released").stdout.splitlines()
    assert table[1].startswith(shown.strftime("%m-%d %H:%M:%S"))  # local: UTC+5
    # an hour ago, typed as the table shows it (local, no offset): read as UTC it would lie
    # five hours in the future and match nothing
    an_hour_ago = (dt.datetime.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = run(config, "--json", "--since", an_hour_ago)
    assert result.exit_code == 0, result.output
    assert [r["event_type"] for r in json.loads(result.stdout)] == [
        "gpu.released",
        "access.denied",
    ]


def test_follow_json_prints_json_lines(tmp_config, monkeypatch):
    config, log = _setup(tmp_config)
    follow = EventLog.follow
    stop = threading.Event()
    threading.Timer(10, stop.set).start()  # never hang the suite, whatever goes wrong

    def follow_one(self, match, **kw):
        """The real follow, ended after the first new event so the command returns."""
        for record in follow(self, match, poll_interval=0.02, stop=stop, warn=kw.get("warn")):
            yield record
            return

    def keep_writing():  # until the command has seen one: follow starts at the end of the file
        while not stop.wait(0.05):
            log.append(Event("test.other", "alice"))
            log.append(Event("gpu.freed", "alice"))

    monkeypatch.setattr(EventLog, "follow", follow_one)
    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = run(config, "--json", "--follow", "--type", "gpu.", "--limit", "1")
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event_type"] for r in lines] == ["gpu.released", "gpu.freed"]
