"""The audit log: whole lines under concurrency, nothing lost to rotation, bad lines skipped."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import multiprocessing
import os
import stat
import threading
import time

import pytest

from ds01_core.domain.audit_log import EventLog, matcher, parse_time
from ds01_core.domain.model import Event
from tests.helpers.waiting import wait_until

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def test_round_trip_and_file_mode(tmp_path):
    log = EventLog(tmp_path / "log" / "events.jsonl")
    event = Event(
        "gpu.allocated",
        user="alice",
        source="mig",
        details={"container": "ctr-a", "slots": ["5.1"], "weight": 2 / 7},
        timestamp=NOW,
    )
    log.append(event)
    (record,) = log.query()
    assert record == {
        "timestamp": "2026-11-22T12:00:00Z",
        "event_type": "gpu.allocated",
        "user": "alice",
        "source": "mig",
        "details": {"container": "ctr-a", "slots": ["5.1"], "weight": 2 / 7},
        "schema_version": 1,
    }
    assert stat.S_IMODE((tmp_path / "log" / "events.jsonl").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "log").stat().st_mode) == 0o750
    assert (tmp_path / "log" / "events.jsonl").read_bytes().count(b"\n") == 1


@pytest.mark.parametrize("bad", ["gpu", "GPU.allocated", "gpu.", "gpu allocated", ".x"])
def test_event_type_must_be_category_action(tmp_path, bad):
    with pytest.raises(ValueError, match=r"is not 'category\.action'"):
        EventLog(tmp_path / "e.jsonl").append(Event(bad))


def _writer(path: str, writer: int, count: int, size: int) -> None:
    log = EventLog(path)
    for seq in range(count):
        log.append(
            Event(
                "test.write",
                user=f"w{writer}",
                details={"writer": writer, "seq": seq, "pad": chr(65 + writer) * size},
            )
        )


def test_concurrent_writers_never_tear_or_lose_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    writers, count = 8, 500
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_writer, args=(str(path), w, count, 2048 + 800 * w))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]  # any torn line fails to parse here
    assert len(records) == writers * count
    for w in range(writers):
        mine = [r["details"] for r in records if r["details"]["writer"] == w]
        assert [d["seq"] for d in mine] == list(range(count))  # complete and in order
        assert all(d["pad"] == chr(65 + w) * (2048 + 800 * w) for d in mine)  # not interleaved


def test_rotation_by_rename_loses_no_line(tmp_path):
    path = tmp_path / "events.jsonl"
    count = 3000
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_writer, args=(str(path), 1, count, 100))
    proc.start()
    rotations = 0
    while proc.is_alive() and rotations < 4:
        if path.exists() and path.stat().st_size > 20_000 * (rotations + 1):
            for n in range(rotations, 0, -1):
                os.rename(tmp_path / f"events.jsonl.{n}", tmp_path / f"events.jsonl.{n + 1}")
            os.rename(path, tmp_path / "events.jsonl.1")
            rotations += 1
        time.sleep(0.001)
    proc.join(120)
    assert proc.exitcode == 0
    assert rotations >= 2, "the writer finished before the test could rotate"
    seqs = [r["details"]["seq"] for r in EventLog(path).read()]
    assert seqs == list(range(count))  # every line, in order, across the files


def test_compressed_rotated_files_are_read(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    for i in range(3):
        log.append(Event("test.a", details={"i": i}))
    with gzip.open(tmp_path / "events.jsonl.2.gz", "wb") as handle:
        handle.write(path.read_bytes())
    path.unlink()
    log.append(Event("test.b", details={"i": 3}))
    os.rename(path, tmp_path / "events.jsonl.1")
    log.append(Event("test.c", details={"i": 4}))
    assert [r["details"]["i"] for r in log.read()] == [0, 1, 2, 3, 4]


def test_corrupt_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Event("test.first"))
    with open(path, "ab") as handle:
        handle.write(b'{"half": "a line\n[1, 2]\n{"timestamp": "x", "event_type": "a.b"}\n')
        handle.write(
            b'{"timestamp": "yesterday", "event_type": "a.b", "user": null, '
            b'"source": "x", "details": {}, "schema_version": 1}\n\n'
        )
        handle.write(
            b'{"timestamp": "2026-11-22T10:00:00Z", "event_type": "a.b", "user": null, '
            b'"source": "x", "details": ["not", "a", "mapping"], "schema_version": 1}\n'
        )
        # no offset: read as UTC, so comparing it with --since cannot crash
        handle.write(
            b'{"timestamp": "2026-11-22T10:00:00", "event_type": "test.naive", "user": null, '
            b'"source": "x", "details": {}, "schema_version": 1}\n'
        )
    log.append(Event("test.last", timestamp=NOW))
    warnings: list[str] = []
    records = log.query(warn=warnings.append)
    assert [r["event_type"] for r in records] == ["test.first", "test.naive", "test.last"]
    assert warnings == [
        f"{path}:2: not JSON, skipped",
        f"{path}:3: not an event (missing keys), skipped",
        f"{path}:4: not an event (missing keys), skipped",
        f"{path}:5: unreadable timestamp, skipped",
        f"{path}:7: not an event (wrong field types), skipped",
    ]
    since = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    filtered = log.query(since=since, until=NOW, container=None, warn=lambda _m: None)
    assert [r["event_type"] for r in filtered] == ["test.naive", "test.last"]
    assert log.query(container="x", warn=lambda _m: None) == []


def test_corrupt_lines_warn_through_logging_by_default(tmp_path, caplog):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Event("test.first"))
    with open(path, "ab") as handle:
        handle.write(b"{torn\n")
    log.append(Event("test.last"))
    with caplog.at_level("WARNING", logger="ds01_core.domain.audit_log"):
        records = log.query()
    assert [r["event_type"] for r in records] == ["test.first", "test.last"]
    assert [r.getMessage() for r in caplog.records] == [f"{path}:2: not JSON, skipped"]
    assert caplog.records[0].levelname == "WARNING"


def test_rotated_files_are_read_oldest_first(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    order = [
        "events.jsonl.3.gz",
        "events.jsonl.2",
        "events.jsonl.1",
        "events.jsonl-20261120",
        "events.jsonl-20261121.gz",
        "events.jsonl",
    ]
    for i, name in enumerate(order):
        log.append(Event("test.a", details={"i": i}))
        target = tmp_path / name
        if name.endswith(".gz"):
            with gzip.open(target, "wb") as handle:
                handle.write(path.read_bytes())
            path.unlink()
        elif name != "events.jsonl":
            os.rename(path, target)
    (tmp_path / "events.jsonl.1.tmp").write_text("junk, never read\n")
    (tmp_path / "other.jsonl").write_text("junk, never read\n")
    assert [p.name for p in log.files()] == order
    assert [r["details"]["i"] for r in log.read()] == list(range(len(order)))


def test_damaged_gzip_keeps_the_rest(tmp_path):
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.jsonl.2.gz").write_bytes(b"\x1f\x8b not really gzip")
    log = EventLog(path)
    log.append(Event("test.live"))
    warnings: list[str] = []
    assert [r["event_type"] for r in log.read(warnings.append)] == ["test.live"]
    assert len(warnings) == 1 and "events.jsonl.2.gz: unreadable" in warnings[0]


def test_filters(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    rows = [
        ("gpu.allocated", "alice", {"container": "train-1"}, 5),
        ("gpu.released", "alice", {"container_id": "4f1cabcdef"}, 3),
        ("gpu.rejected", "bob", {"container": "other"}, 2),
        ("lifecycle.idle_stop", "alice", {"container_name": "train-1"}, 1),
    ]
    for event_type, user, details, hours_ago in rows:
        log.append(
            Event(event_type, user, details=details, timestamp=NOW - dt.timedelta(hours=hours_ago))
        )

    def types(**kw):
        return [r["event_type"] for r in log.query(**kw)]

    assert types(user="alice") == ["gpu.allocated", "gpu.released", "lifecycle.idle_stop"]
    assert types(type_prefix="gpu.re") == ["gpu.released", "gpu.rejected"]
    assert types(container="train-1") == ["gpu.allocated", "lifecycle.idle_stop"]
    assert types(container="4f1c") == ["gpu.released"]
    assert types(since=parse_time("2.5h", NOW)) == ["gpu.rejected", "lifecycle.idle_stop"]
    assert types(until=NOW - dt.timedelta(hours=3)) == ["gpu.allocated", "gpu.released"]
    assert types(
        since=parse_time("2026-11-22T08:30:00Z"), until=parse_time("2026-11-22T10:30")
    ) == ["gpu.released", "gpu.rejected"]
    assert types(limit=2) == ["gpu.rejected", "lifecycle.idle_stop"]
    assert matcher(user="carol")({"user": "alice"}) is False


def test_parse_time_forms():
    assert parse_time("2h", NOW) == NOW - dt.timedelta(hours=2)
    assert parse_time("90s", NOW) == NOW - dt.timedelta(seconds=90)
    assert parse_time("2026-11-20", NOW) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_time("2026-11-20T10:00+01:00", NOW) == dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    assert parse_time("2026-11-20T10:00Z", NOW) == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    assert parse_time("1h30m", NOW) == NOW - dt.timedelta(minutes=90)
    with pytest.raises(ValueError, match="expected an ISO date or time"):
        parse_time("yesterday", NOW)
    with pytest.raises(ValueError, match="got '2h ago'"):
        parse_time("2h ago", NOW)


def test_parse_time_local_reads_naive_times_as_local(monkeypatch):
    monkeypatch.setenv("TZ", "XXX-05")  # POSIX form: UTC+5, no tz database needed
    time.tzset()
    try:
        assert parse_time("2026-11-20T10:00", NOW, local=True) == dt.datetime(
            2026, 11, 20, 5, tzinfo=dt.UTC
        )
        assert parse_time("2026-11-20T10:00", NOW) == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
        assert parse_time("2026-11-20T10:00Z", NOW, local=True) == dt.datetime(
            2026, 11, 20, 10, tzinfo=dt.UTC
        )
    finally:
        monkeypatch.undo()
        time.tzset()


def test_follow_sees_new_events_and_continues_after_rotation(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Event("test.before"))
    stop = threading.Event()
    seen: list[str] = []

    def consume():
        for record in log.follow(
            lambda r: r["event_type"] != "test.skip", poll_interval=0.02, stop=stop
        ):
            seen.append(record["event_type"])

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        follower_ready(log, seen)
        log.append(Event("test.one"))
        log.append(Event("test.skip"))
        wait_until(lambda: "test.one" in seen, 10, "test.one read before the rotation")
        os.rename(path, tmp_path / "events.jsonl.1")
        log.append(Event("test.two"))
        wait_until(lambda: "test.two" in seen, 10, "test.two read from the new file")
    finally:
        stop.set()
        thread.join(5)
    assert not_ready(seen) == ["test.one", "test.two"]  # not the old one, not the filtered one


def follower_ready(log, seen):
    """Append markers until the follower has read one: from then on it reads what is
    appended (a fixed sleep would only make that likely)."""
    wait_until(
        lambda: log.append(Event("test.ready")) or "test.ready" in seen,
        10,
        "the follower reading the log",
        every=0.05,
    )


def not_ready(seen):
    return [event for event in seen if event != "test.ready"]


def _follow_in_thread(log, seen, stop, **kw):
    def consume():
        for record in log.follow(poll_interval=0.02, stop=stop, **kw):
            seen.append(record["event_type"])

    thread = threading.Thread(target=consume)
    thread.start()
    return thread


def test_follow_reads_a_line_written_to_the_renamed_file_after_rotation(tmp_path):
    """A writer that opened the file just before the rename writes into the rotated file."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append(Event("test.before"))
    stop = threading.Event()
    seen: list[str] = []
    thread = _follow_in_thread(log, seen, stop)
    try:
        follower_ready(log, seen)
        late = os.open(path, os.O_WRONLY | os.O_APPEND)  # the slow writer's descriptor
        os.rename(path, tmp_path / "events.jsonl.1")
        log.append(Event("test.new_file"))
        wait_until(lambda: "test.new_file" in seen, 10, "test.new_file read")
        line = json.dumps(Event("test.late").to_json_dict()) + "\n"
        os.write(late, line.encode())
        os.close(late)
        wait_until(lambda: "test.late" in seen, 10, "test.late read from the renamed file")
    finally:
        stop.set()
        thread.join(5)
    assert not_ready(seen) == ["test.new_file", "test.late"]


def test_follow_after_truncation_in_place(tmp_path):
    """copytruncate: the same file shrinks; what is written next is still seen, once."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    for _ in range(5):
        log.append(Event("test.old", details={"pad": "x" * 200}))
    stop = threading.Event()
    seen: list[str] = []
    thread = _follow_in_thread(log, seen, stop)
    try:
        follower_ready(log, seen)
        os.truncate(path, 0)
        log.append(Event("test.after"))
        # whatever the follower would repeat comes before this one: once it is read, all is in
        log.append(Event("test.sentinel"))
        wait_until(lambda: "test.sentinel" in seen, 10, "the line after the truncation read")
    finally:
        stop.set()
        thread.join(5)
    assert not_ready(seen) == ["test.after", "test.sentinel"]


def test_follow_from_start_and_a_file_that_appears_later(tmp_path):
    path = tmp_path / "sub" / "events.jsonl"
    log = EventLog(path)
    stop = threading.Event()
    seen: list[str] = []
    thread = _follow_in_thread(log, seen, stop, from_start=True)
    try:
        time.sleep(0.1)  # the follower starts before the file exists (not an assertion's wait)
        log.append(Event("test.first"))  # creates the file: read from its start
        log.append(Event("test.second"))
        wait_until(lambda: len(seen) == 2, 10, "both events read")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert seen == ["test.first", "test.second"]
