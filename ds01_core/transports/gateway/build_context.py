"""The images a classic build would read: ``FROM`` and ``COPY --from`` in its Dockerfile.

A build can name any image the engine has, so another user's image could be read by building
``FROM`` it; the gateway reads the Dockerfile from the spooled build context first. The parser
follows the Dockerfile grammar as far as image names go — line continuations, the ``escape``
directive, ``ARG`` defaults and the build's ``buildargs`` in ``$VAR``/``${VAR}``/``${VAR:-x}`` —
and refuses what it cannot resolve for sure rather than guessing.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Mapping
from typing import IO

from ds01_core.transports.gateway.call import Refused
from ds01_core.transports.gateway.http import HttpError

MAX_DOCKERFILE = 4 * 1024 * 1024
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_VARIABLE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


def _unclear(why: str) -> Refused:
    return Refused(f"the build's Dockerfile cannot be checked: {why}", 400)


def dockerfile_of(file: IO[bytes], path: str) -> str:
    """The Dockerfile at ``path`` in a spooled build context (a tar, maybe compressed; a body
    that is no tar at all is the Dockerfile itself, as the engine reads it)."""
    file.seek(0)
    wanted = _clean(path) or "Dockerfile"
    try:
        with tarfile.open(fileobj=file, mode="r:*") as tar:
            candidates: dict[str, tarfile.TarInfo] = {}
            for entry in tar:
                name = _clean(entry.name)
                if name in (wanted, "dockerfile"):
                    candidates[name] = entry  # the last of several wins, as the engine extracts
            # without a name given, the engine falls back to a lower-case "dockerfile"
            fallback = None if _clean(path) else candidates.get("dockerfile")
            found = candidates.get(wanted) or fallback
            if found is None:
                raise _unclear(f"no {wanted} in the build context")
            found_name = found.name
            if not found.isfile():
                raise _unclear(f"{found_name} is a link or not a plain file")
            if found.size > MAX_DOCKERFILE:
                raise _unclear(f"{found_name} is larger than 4M")
            handle = tar.extractfile(found)
            data = handle.read() if handle else b""
    except HttpError:
        raise
    except Exception:  # not a tar (or a compressed one): the body is the Dockerfile
        file.seek(0)
        data = file.read(MAX_DOCKERFILE + 1)
        if len(data) > MAX_DOCKERFILE:
            raise _unclear("the build context is neither a tar archive nor a Dockerfile") from None
    return data.decode("utf-8", "replace")


def _clean(name: str) -> str:
    """A path in the context as the engine resolves it (``./a//b`` → ``a/b``; ``.a`` stays)."""
    return posixpath.normpath("/" + name).lstrip("/") if name not in ("", ".") else ""


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    escape = "\\"
    lines = text.replace("\r\n", "\n").split("\n")
    for line in lines:  # parser directives: only at the very top
        match = _DIRECTIVE.match(line)
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            escape = match.group(2)
    joined: list[str] = []
    current = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        current += stripped
        if current.strip():
            joined.append(current.strip())
        current = ""
    if current.strip():
        joined.append(current.strip())
    return joined


def _expand(word: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        value = values.get(name)
        if match.group(2) == "-":
            return value or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        if value is None:
            raise _unclear(f"${name} in an image name has no value")
        return value

    expanded = _VARIABLE.sub(one, word)
    if "$" in expanded:
        raise _unclear(f"the image name {word!r} uses a variable the gateway cannot resolve")
    return expanded


def image_refs(text: str, build_args: Mapping[str, str]) -> list[str]:
    """Every image a build of this Dockerfile would read (stage names left out)."""
    refs: list[str] = []
    stages: set[str] = set()
    args: dict[str, str] = {}
    seen_from = False
    for instruction in _instructions(text):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        words = rest.split()
        if keyword == "ARG" and not seen_from:
            for word in words:
                name, eq, default = word.partition("=")
                value = build_args.get(name, default.strip("\"'") if eq else None)
                if value is not None:
                    args[name] = value
        elif keyword == "FROM":
            seen_from = True
            plain = [w for w in words if not w.startswith("--")]
            if not plain:
                raise _unclear("a FROM without an image")
            image = _expand(plain[0], args)
            if image.lower() not in stages and image.lower() != "scratch":
                refs.append(image)
            if len(plain) >= 3 and plain[1].lower() == "as":
                stages.add(plain[2].lower())
        elif keyword in ("COPY", "ADD"):
            for word in words:
                if word.lower().startswith("--from="):
                    source = word.split("=", 1)[1]
                    if source.lower() not in stages and not source.isdigit():
                        refs.append(_expand(source, args))
    return refs
