"""Notice text made safe to show: no terminal control sequences, predictable line breaks.

A notice can quote things users chose (container names, image names), and ds01 writes it as
root to terminals and files. An escape sequence in a container name must not reach a terminal
as a command (it could retitle the window, or on some terminals type text back), so every
channel shows notice text through :func:`clean`, as ``write(1)`` does with ``^X``.
"""

from __future__ import annotations

import datetime as dt
import re

from ds01_core.api import Notice

_WHITESPACE = re.compile(r"\s+")


def _caret(char: str) -> str:
    code = ord(char)
    if code == 0x7F:
        return "^?"
    if code < 0x20:
        return "^" + chr(code + 0x40)
    return "?"  # C1 controls (U+0080-U+009F), e.g. the one-byte CSI


def clean(text: str) -> str:
    """``text`` with control characters shown as ``^X`` (tabs become spaces; newlines stay)."""
    out = []
    for char in text.replace("\r\n", "\n").replace("\t", " "):
        code = ord(char)
        if char == "\n" or (0x20 <= code < 0x7F) or code > 0x9F:
            out.append(char)
        else:
            out.append(_caret(char))
    return "".join(out)


def one_line(text: str) -> str:
    """:func:`clean` text on one line, runs of whitespace (newlines too) as one space."""
    return _WHITESPACE.sub(" ", clean(text)).strip()


def title(notice: Notice) -> str:
    """``warning: GPU idle`` (``info`` notices are just their subject)."""
    subject = one_line(notice.subject)
    return subject if notice.severity == "info" else f"{notice.severity}: {subject}"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
