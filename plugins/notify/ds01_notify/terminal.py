"""The terminal channel: the notice on every terminal the user is logged in on, like ``write``.

The daemon runs as root, and the terminal names come from utmp, which more programs than
``login`` may write (``screen``, ``tmux`` through utempter). So before anything is opened, the
path must be a character device of a terminal driver, owned by the user, under ``tty_dir``:
opening an arbitrary device as root can have effects of its own (a watchdog starts counting).
A terminal whose group-write bit is off (``mesg n``) is skipped, as ``write`` skips it.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import re
import select
import socket
import stat
import struct
import termios
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from ds01_core.api import DeliveryResult, Notice, uid_for_username
from ds01_notify.config import TerminalConfig
from ds01_notify.text import clean, title
from ds01_notify.utmp import sessions_of

#: Linux major numbers of terminal devices: 3 BSD pty slaves, 4 ttyN/ttyS, 136-143 Unix98
#: ptys (/dev/pts/N), 188 USB serial, 204 low-density serial. 5 (/dev/tty, console, ptmx) is
#: not a user's terminal.
TTY_MAJORS = frozenset({3, 4, 188, 204, *range(136, 144)})
_LINE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class Skipped(Exception):
    """This terminal is not written to; the message says why."""


def tty_path(tty_dir: str, line: str) -> Path:
    """``/dev/pts/5`` for ``pts/5``; a line that could leave ``tty_dir`` is refused."""
    if not _LINE.match(line) or ".." in line.split("/"):
        raise Skipped(f"{line!r} is not a terminal name")
    return Path(tty_dir) / line


def check_tty(info: os.stat_result, uid: int | None) -> None:
    """Raise :class:`Skipped` unless ``info`` is a terminal of ``uid`` accepting messages."""
    if not stat.S_ISCHR(info.st_mode) or os.major(info.st_rdev) not in TTY_MAJORS:
        raise Skipped("not a terminal device")
    if uid is None or info.st_uid != uid:
        raise Skipped("belongs to another user (a stale login record?)")
    if not info.st_mode & stat.S_IWGRP:
        raise Skipped("messages are off (mesg n)")


def terminal_width(fd: int, default: int) -> int:
    """The terminal's columns (``TIOCGWINSZ``), or ``default`` when it does not say."""
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return default
    _rows, cols, _x, _y = struct.unpack("HHHH", packed)
    return cols or default


def render(notice: Notice, width: int, host: str, now: dt.datetime) -> str:
    """The text as written: a ``write``-style banner, then the notice wrapped to ``width``.

    Lines end in CR LF, since the terminal may be in raw mode (an editor, a full-screen tool).
    """
    usable = max(width - 1, 10)  # a full-width line makes some terminals wrap a blank line
    banner = f"Message from ds01 on {host} at {now.astimezone():%H:%M} ..."
    lines: list[str] = []
    for paragraph in (banner, title(notice), *clean(notice.message).split("\n")):
        lines.extend(
            textwrap.wrap(paragraph, usable, break_long_words=True, break_on_hyphens=False) or [""]
        )
    return "\r\n" + "\r\n".join(lines) + "\r\n"


def _write_all(fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
            continue
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Skipped("its output is stalled (Ctrl-S or a hung connection?); gave up")
        select.select([], [fd], [], remaining)


def write_to_tty(
    path: Path, uid: int | None, text_for: Callable[[int], str], default_width: int, deadline: float
) -> None:
    """Write to one terminal, or raise :class:`Skipped` saying why not."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        raise Skipped("no such terminal (a stale login record?)") from None
    check_tty(before, uid)
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise Skipped(f"cannot open it: {os.strerror(exc.errno or errno.EIO)}") from None
    try:
        after = os.fstat(fd)
        if (after.st_rdev, after.st_ino) != (before.st_rdev, before.st_ino):
            raise Skipped("it changed while being opened")
        check_tty(after, uid)
        _write_all(fd, text_for(terminal_width(fd, default_width)).encode(), deadline)
    finally:
        os.close(fd)


@attrs.frozen
class TerminalChannel:
    """Writes the notice to each of the user's terminals; delivered if any took it."""

    cfg: TerminalConfig
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    host: str = attrs.Factory(socket.gethostname)

    name = "terminal"
    family = "terminal"

    @property
    def timeout(self) -> float:
        return float(self.cfg.timeout)

    def send(self, notice: Notice) -> DeliveryResult:
        try:
            sessions = sessions_of(self.cfg.utmp_path, notice.user)
        except FileNotFoundError:
            return DeliveryResult(self.name, False, f"no login records at {self.cfg.utmp_path}")
        if not sessions:
            return DeliveryResult(self.name, False, f"{notice.user} has no terminal open")
        uid = uid_for_username(notice.user)
        moment = self.now()
        deadline = time.monotonic() + self.timeout
        written: list[str] = []
        skipped: list[str] = []
        for session in sessions:
            try:
                path = tty_path(self.cfg.tty_dir, session.line)
                write_to_tty(
                    path,
                    uid,
                    lambda width: render(notice, width, self.host, moment),
                    self.cfg.default_width,
                    deadline,
                )
                written.append(session.line)
            except Skipped as why:
                skipped.append(f"{session.line}: skipped, {why}")
        parts = [f"written to {', '.join(written)}"] if written else []
        return DeliveryResult(self.name, bool(written), "; ".join(parts + skipped))
