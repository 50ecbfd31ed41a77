"""The terminal channel against real pseudo-terminals registered in a utmp file: delivered,
wrapped to the terminal's width, and skipped where ``write`` would skip (``mesg n``) or where
root should not write (another user's terminal, a device that is no terminal)."""

from __future__ import annotations

import termios
import time

import pytest

from ds01_core.domain.model import DeliveryResult, Notice
from ds01_notify.config import TerminalConfig
from ds01_notify.terminal import TerminalChannel
from tests.plugins.notify.notify_servers import iter_lines

LONG = (
    "Your container train-resnet has used no GPU for 55 minutes and will be stopped in 5 "
    "minutes unless it becomes busy again; save your work or run ds01 container keep to "
    "extend it by one hour."
)


@pytest.fixture
def alice(unix_users):
    return unix_users["ds01ta"]


def channel(utmp_path: str, **kw) -> TerminalChannel:
    return TerminalChannel(TerminalConfig(utmp_path=utmp_path, **kw), host="gpu01")


def notice(user: str, message: str = "hello from ds01", **kw) -> Notice:
    return Notice(user, "GPU idle", message, severity="warning", **kw)


def test_the_notice_is_written_to_every_terminal_of_the_user(alice, ptys, utmp_file):
    first, second = ptys(alice.uid, alice.gid), ptys(alice.uid, alice.gid)
    path = utmp_file((alice.name, first.line), ("someone", "pts/999"), (alice.name, second.line))
    result = channel(path).send(notice(alice.name))
    assert result == DeliveryResult("terminal", True, f"written to {first.line}, {second.line}")
    for pty in (first, second):
        lines = list(iter_lines(pty.read()))
        assert lines[1].startswith("Message from ds01 on gpu01 at ")
        assert lines[2:4] == ["warning: GPU idle", "hello from ds01"]


def test_long_lines_are_wrapped_to_the_terminal_width(alice, ptys, utmp_file):
    narrow = ptys(alice.uid, alice.gid, cols=40)
    assert channel(utmp_file((alice.name, narrow.line))).send(notice(alice.name, LONG)).delivered
    lines = [line for line in iter_lines(narrow.read()) if line]
    assert max(len(line) for line in lines) <= 39
    body = lines[2:]
    assert len(body) >= 5
    assert " ".join(body) == LONG


def test_a_terminal_without_a_size_gets_the_default_width(alice, ptys, utmp_file):
    pty = ptys(alice.uid, alice.gid, cols=0)
    send = channel(utmp_file((alice.name, pty.line)), default_width=30).send
    assert send(notice(alice.name, LONG)).delivered
    assert max(len(line) for line in iter_lines(pty.read())) <= 29


def test_mesg_n_is_respected(alice, ptys, utmp_file):
    closed, open_ = ptys(alice.uid, alice.gid, mesg=False), ptys(alice.uid, alice.gid)
    path = utmp_file((alice.name, closed.line), (alice.name, open_.line))
    result = channel(path).send(notice(alice.name))
    assert result.delivered
    assert f"{closed.line}: skipped, messages are off (mesg n)" in result.detail
    assert closed.read(timeout=0.3) == ""
    assert "hello from ds01" in open_.read()


def test_only_closed_terminals_is_not_delivered(alice, ptys, utmp_file):
    closed = ptys(alice.uid, alice.gid, mesg=False)
    result = channel(utmp_file((alice.name, closed.line))).send(notice(alice.name))
    assert result == DeliveryResult(
        "terminal", False, f"{closed.line}: skipped, messages are off (mesg n)"
    )


def test_another_users_terminal_is_never_written(unix_users, ptys, utmp_file):
    alice, bob = unix_users["ds01ta"], unix_users["ds01tb"]
    bobs = ptys(bob.uid, bob.gid)
    # a stale or forged record claims bob's terminal for alice
    result = channel(utmp_file((alice.name, bobs.line))).send(notice(alice.name))
    assert not result.delivered
    assert "belongs to another user" in result.detail
    assert bobs.read(timeout=0.3) == ""


@pytest.mark.parametrize("line", ["null", "../etc/passwd", "/etc/passwd", "pts/../null"])
def test_lines_that_are_no_terminal_are_refused_before_opening(alice, utmp_file, line):
    result = channel(utmp_file((alice.name, line))).send(notice(alice.name))
    assert not result.delivered
    assert "skipped" in result.detail


def test_escape_sequences_in_a_notice_reach_the_terminal_as_text(alice, ptys, utmp_file):
    pty = ptys(alice.uid, alice.gid)
    evil = notice(alice.name, "container \x1b]2;owned\x07 stopped")
    assert channel(utmp_file((alice.name, pty.line))).send(evil).delivered
    text = pty.read()
    assert "\x1b" not in text and "\x07" not in text
    assert "container ^[]2;owned^G stopped" in text


def test_a_user_with_no_terminal_or_no_utmp(alice, utmp_file, tmp_path):
    result = channel(utmp_file(("someone", "pts/1"))).send(notice(alice.name))
    assert result == DeliveryResult("terminal", False, f"{alice.name} has no terminal open")
    missing = str(tmp_path / "nowhere")
    assert channel(missing).send(notice(alice.name)) == DeliveryResult(
        "terminal", False, f"no login records at {missing}"
    )


def test_a_stalled_terminal_is_given_up_within_the_timeout(alice, ptys, utmp_file):
    pty = ptys(alice.uid, alice.gid)
    termios.tcflow(pty.slave, termios.TCOOFF)  # output suspended, as after Ctrl-S
    started = time.monotonic()
    result = channel(utmp_file((alice.name, pty.line)), timeout=0.5).send(notice(alice.name))
    assert time.monotonic() - started < 2
    assert not result.delivered
    assert "output is stalled" in result.detail
    termios.tcflow(pty.slave, termios.TCOON)
    assert pty.read(timeout=0.3) == ""  # nothing half-written
