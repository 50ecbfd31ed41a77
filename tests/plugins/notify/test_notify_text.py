"""utmp records read with struct, and notice text made safe for terminals and files."""

from __future__ import annotations

import os

from ds01_core.domain.model import Notice
from ds01_notify.text import clean, one_line, title
from ds01_notify.utmp import (
    DEAD_PROCESS,
    USER_PROCESS,
    UTMP,
    UtmpEntry,
    read_utmp,
    sessions_of,
    write_utmp,
)


def test_a_record_is_glibcs_384_bytes_and_round_trips():
    entry = UtmpEntry(USER_PROCESS, 4242, "pts/5", "alice", host="10.1.2.3", id="ts/5")
    raw = entry.pack()
    assert len(raw) == UTMP.size == 384
    # the fields sit where glibc puts them
    assert raw[0:2] == USER_PROCESS.to_bytes(2, "little")
    assert raw[4:8] == (4242).to_bytes(4, "little")
    assert raw[8:13] == b"pts/5"
    assert raw[44:49] == b"alice"
    assert raw[76:84] == b"10.1.2.3"
    assert UtmpEntry.unpack(raw) == entry


def test_sessions_are_the_users_live_logins_one_per_line(tmp_path):
    path = tmp_path / "utmp"
    write_utmp(
        path,
        [
            UtmpEntry(USER_PROCESS, 1, "pts/1", "alice"),
            UtmpEntry(USER_PROCESS, 2, "pts/2", "bob"),
            UtmpEntry(DEAD_PROCESS, 3, "pts/3", "alice"),
            UtmpEntry(USER_PROCESS, 4, "pts/4", "Alice"),  # one person, however spelt
            UtmpEntry(USER_PROCESS, 5, "pts/1", "alice"),  # the same terminal twice
            UtmpEntry(USER_PROCESS, 6, "", "alice"),
        ],
    )
    assert [s.line for s in sessions_of(path, "alice")] == ["pts/1", "pts/4"]


def test_a_torn_last_record_is_ignored(tmp_path):
    path = tmp_path / "utmp"
    whole = UtmpEntry(USER_PROCESS, 1, "pts/1", "alice").pack()
    path.write_bytes(whole + whole[:100])
    assert [e.line for e in read_utmp(path)] == ["pts/1"]


def test_the_hosts_own_utmp_parses_if_there_is_one():
    for candidate in ("/var/run/utmp", "/run/utmp"):
        if os.path.exists(candidate):
            assert all(isinstance(e.line, str) for e in read_utmp(candidate))


def test_control_characters_are_shown_not_obeyed():
    assert clean("ok\x1b]0;pwned\x07 \x9b2J\x7f") == "ok^[]0;pwned^G ?2J^?"
    assert clean("a\r\nb\tc") == "a\nb c"
    assert one_line("two\n  lines \x1b") == "two lines ^["


def test_title_shows_severity_unless_info():
    assert title(Notice("alice", "GPU idle", "…", severity="warning")) == "warning: GPU idle"
    assert title(Notice("alice", "Hello\nthere", "…")) == "Hello there"
