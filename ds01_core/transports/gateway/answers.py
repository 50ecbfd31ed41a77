"""Reading the engine's answers the policy judges, never trusting their shape.

Anything but the expected shape is a 502 for the client — not a guess, and never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ds01_core.transports.gateway.http import HttpError

_UNCHECKABLE = "the engine's answer could not be checked; try again"
_ID_PREFIX = b'{"Id":"'
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def inspected_id(data: bytes) -> str:
    """The id at the start of an engine inspect answer (its first field), or ""."""
    if data.startswith(_ID_PREFIX) and data[71:72] == b'"':
        return data[7:71].decode("ascii", "replace")
    return ""


def engine_json(data: bytes, shape: type) -> Any:
    """An engine answer decoded, checked to be a ``shape`` (a list: of objects)."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, shape):
        raise HttpError(502, _UNCHECKABLE)
    if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
        raise HttpError(502, _UNCHECKABLE)
    return value


def _after_space(text: str, position: int) -> int:
    """The position of the first non-blank character at or after ``position``."""
    match = _SPACE.match(text, position)
    return match.end() if match else position


def json_array_filter(data: bytes, keep: Callable[[dict[str, Any]], bool]) -> bytes:
    """The engine's JSON array with only the objects ``keep`` accepts, each passed on as the
    engine's own text (decoding is needed to judge a row; encoding it again is not)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(502, _UNCHECKABLE) from None
    start = _after_space(text, 0)
    if text[start : start + 1] != "[":
        raise HttpError(502, _UNCHECKABLE)
    position = _after_space(text, start + 1)
    kept: list[str] = []
    while text[position : position + 1] != "]":
        try:
            row, stop = _DECODER.raw_decode(text, position)
        except ValueError:
            raise HttpError(502, _UNCHECKABLE) from None
        if not isinstance(row, dict):
            raise HttpError(502, _UNCHECKABLE)
        if keep(row):
            kept.append(text[position:stop])
        position = _after_space(text, stop)
        if text[position : position + 1] == ",":
            position = _after_space(text, position + 1)
        elif text[position : position + 1] != "]":
            raise HttpError(502, _UNCHECKABLE)
    return ("[" + ",".join(kept) + "]\n").encode("utf-8")
