"""The in-container channel against a real Docker engine: the line lands in the file (created
with its directory when missing), appends keep earlier lines, stopped containers work, and a
symbolic link is never followed."""

from __future__ import annotations

import datetime as dt
import io
import tarfile

import pytest

from ds01_core.domain.docker_engine import DockerAdapter
from ds01_core.domain.model import DeliveryResult, Notice
from ds01_notify.config import ContainerFileConfig
from ds01_notify.container_file import ContainerFileChannel, trim

pytestmark = pytest.mark.integration

ALERTS = "/workspace/.ds01-alerts"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def read_member(engine: DockerAdapter, container: str, path: str) -> tuple[tarfile.TarInfo, str]:
    """A file in a container (running or not) through the archive API, with its header."""
    chunks, _stat = engine.api.get_archive(container, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        assert member is not None
        source = tar.extractfile(member)
        assert source is not None
        return member, source.read().decode()


def channel(engine: DockerAdapter, **kw) -> ContainerFileChannel:
    return ContainerFileChannel(ContainerFileConfig(**kw), engine, now=lambda: NOW)


def notice(container: str, subject: str = "GPU idle", message: str = "stopping in 5m") -> Notice:
    return Notice("alice", subject, message, severity="warning", container=container)


def test_the_line_is_written_to_a_new_file(docker_engine, container_factory):
    box = container_factory()  # the test image has an empty /workspace
    result = channel(docker_engine).send(notice(box.id))
    assert result == DeliveryResult(
        "container_file", True, f"created {ALERTS} in container {box.id}"
    )
    _member, text = read_member(docker_engine, box.id, ALERTS)
    assert text == "2026-03-01T12:00:00Z [warning] GPU idle: stopping in 5m\n"


def test_a_missing_directory_is_made(docker_engine, container_factory):
    box = container_factory()
    assert docker_engine.exec_run(box.id, ["rmdir", "/workspace"]).exit_code == 0
    result = channel(docker_engine).send(notice(box.id))
    assert result == DeliveryResult(
        "container_file", True, f"created {ALERTS} (made /workspace) in container {box.id}"
    )
    _member, text = read_member(docker_engine, box.id, ALERTS)
    assert text == "2026-03-01T12:00:00Z [warning] GPU idle: stopping in 5m\n"
    code, output = docker_engine.exec_run(box.id, ["cat", ALERTS])
    assert (code, output) == (0, text)


def test_appending_twice_keeps_both_lines(docker_engine, container_factory):
    box = container_factory(name="append")
    send = channel(docker_engine).send
    assert send(notice(box.name, "first", "one")).delivered
    second = send(notice(box.name, "second", "two\nlines"))
    assert second == DeliveryResult(
        "container_file", True, f"appended to {ALERTS} in container {box.name}"
    )
    _member, text = read_member(docker_engine, box.id, ALERTS)
    assert text.splitlines() == [
        "2026-03-01T12:00:00Z [warning] first: one",
        "2026-03-01T12:00:00Z [warning] second: two lines",
    ]


def test_a_stopped_container_gets_the_line_too(docker_engine, container_factory):
    box = container_factory(start=False)
    assert channel(docker_engine).send(notice(box.id)).delivered
    _member, text = read_member(docker_engine, box.id, ALERTS)
    assert text.endswith("GPU idle: stopping in 5m\n")


def test_new_files_belong_to_the_directorys_owner(docker_engine, container_factory):
    box = container_factory()
    code, out = docker_engine.exec_run(
        box.id, ["sh", "-c", "mkdir -p /workspace && chown 1234:2345 /workspace"]
    )
    assert code == 0, out
    assert channel(docker_engine).send(notice(box.id)).delivered
    member, _text = read_member(docker_engine, box.id, ALERTS)
    assert (member.uid, member.gid, member.mode & 0o7777) == (1234, 2345, 0o644)
    # the owner's own changes to the file (mode) survive the next append
    docker_engine.exec_run(box.id, ["chmod", "600", ALERTS])
    assert channel(docker_engine).send(notice(box.id)).delivered
    member, text = read_member(docker_engine, box.id, ALERTS)
    assert (member.uid, member.gid, member.mode & 0o7777) == (1234, 2345, 0o600)
    assert len(text.splitlines()) == 2


def test_deeper_paths_are_made_whole(docker_engine, container_factory):
    box = container_factory()
    path = "/srv/ds01/alerts/log"
    result = channel(docker_engine, path=path).send(notice(box.id))
    assert result.detail == f"created {path} (made /srv/ds01/alerts) in container {box.id}"
    _member, text = read_member(docker_engine, box.id, path)
    assert text.endswith("stopping in 5m\n")


def test_a_symbolic_link_is_not_followed(docker_engine, container_factory):
    box = container_factory()
    docker_engine.exec_run(
        box.id, ["sh", "-c", f"echo precious > /tmp/target && ln -s /tmp/target {ALERTS}"]
    )
    result = channel(docker_engine).send(notice(box.id))
    assert result == DeliveryResult(
        "container_file",
        False,
        f"container {box.id}: {ALERTS} is a symbolic link; not following it",
    )
    assert read_member(docker_engine, box.id, "/tmp/target")[1] == "precious\n"


def test_the_file_keeps_its_newest_lines_within_max_bytes(docker_engine, container_factory):
    box = container_factory()
    send = channel(docker_engine, max_bytes=200).send
    for index in range(8):
        assert send(notice(box.id, f"n{index}", "x" * 20)).delivered
    _member, text = read_member(docker_engine, box.id, ALERTS)
    assert len(text.encode()) <= 200
    assert text.splitlines()[-1].endswith("n7: " + "x" * 20)
    assert all(line.startswith("2026-") for line in text.splitlines())


def test_a_container_that_is_gone(docker_engine):
    result = channel(docker_engine).send(notice("ds01-test-no-such-container"))
    assert result == DeliveryResult(
        "container_file", False, "container ds01-test-no-such-container no longer exists"
    )


def test_trim_keeps_whole_lines():
    assert trim(b"aaaa\nbbbb\ncccc\n", 100) == b"aaaa\nbbbb\ncccc\n"
    assert trim(b"aaaa\nbbbb\ncccc\n", 11) == b"bbbb\ncccc\n"
    assert trim(b"aaaa\nbbbb\ncccc\n", 10) == b"bbbb\ncccc\n"
    assert trim(b"aaaa\nbbbb\ncccc\n", 9) == b"cccc\n"
    assert trim(b"aaaa\nbbbbbbbbbbbb\n", 6) == b"bbbbb\n"
