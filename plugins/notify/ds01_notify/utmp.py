"""Who is logged in on which terminal: the utmp file, read with :mod:`struct`.

Python has no utmp module, and ``who``'s output is meant for people, so the file is read as
glibc writes it on x86_64 (and aarch64): ``struct utmp``, 384 bytes per record. Only
``USER_PROCESS`` records name a logged-in user's terminal. :meth:`UtmpEntry.pack` writes the
same layout, for tests and tools that need a utmp file of their own.
"""

from __future__ import annotations

import struct
from pathlib import Path

import attrs

from ds01_core.api import normalize_username

USER_PROCESS = 7
DEAD_PROCESS = 8

# short ut_type (+2 padding); pid_t ut_pid; char ut_line[32]; char ut_id[4]; char ut_user[32];
# char ut_host[256]; struct exit_status {short, short}; int32 ut_session;
# struct {int32 tv_sec, tv_usec} ut_tv; int32 ut_addr_v6[4]; char __glibc_reserved[20]
UTMP = struct.Struct("<h2xi32s4s32s256shhi2i4I20x")
assert UTMP.size == 384, UTMP.size

#: a utmp file larger than this is not a utmp file (a busy host has a few hundred records)
MAX_BYTES = 16 * 1024 * 1024


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@attrs.frozen
class UtmpEntry:
    """One utmp record's useful fields."""

    type: int
    pid: int
    line: str
    user: str
    host: str = ""
    id: str = ""
    session: int = 0
    tv_sec: int = 0

    @classmethod
    def unpack(cls, record: bytes) -> UtmpEntry:
        (
            ut_type,
            pid,
            line,
            ut_id,
            user,
            host,
            _termination,
            _exit,
            session,
            tv_sec,
            _tv_usec,
            *_addr,
        ) = UTMP.unpack(record)
        return cls(
            type=ut_type,
            pid=pid,
            line=_text(line),
            user=_text(user),
            host=_text(host),
            id=_text(ut_id),
            session=session,
            tv_sec=tv_sec,
        )

    def pack(self) -> bytes:
        """This record in glibc's layout (strings cut to their fields' sizes)."""
        return UTMP.pack(
            self.type,
            self.pid,
            self.line.encode()[:32],
            self.id.encode()[:4],
            self.user.encode()[:32],
            self.host.encode()[:256],
            0,
            0,
            self.session,
            self.tv_sec,
            0,
            0,
            0,
            0,
            0,
        )


def read_utmp(path: str | Path) -> list[UtmpEntry]:
    """Every complete record in the file (a torn last record, mid-write, is ignored)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES)
    usable = len(data) - len(data) % UTMP.size
    return [UtmpEntry.unpack(data[i : i + UTMP.size]) for i in range(0, usable, UTMP.size)]


def sessions_of(path: str | Path, user: str) -> list[UtmpEntry]:
    """``user``'s login sessions (``USER_PROCESS``), one per terminal line, in file order.

    Names are compared normalised, as everywhere in ds01 (``Alice`` is ``alice``).
    """
    wanted = normalize_username(user)
    seen: set[str] = set()
    found = []
    for entry in read_utmp(path):
        if entry.type != USER_PROCESS or not entry.line:
            continue
        if normalize_username(entry.user) != wanted:
            continue
        if entry.line not in seen:
            seen.add(entry.line)
            found.append(entry)
    return found


def write_utmp(path: str | Path, entries: list[UtmpEntry]) -> None:
    """Write ``entries`` as a utmp file (for tests, and for hosts that keep none)."""
    Path(path).write_bytes(b"".join(entry.pack() for entry in entries))
