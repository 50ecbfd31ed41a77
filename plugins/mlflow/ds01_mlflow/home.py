"""The home directory a container's process will have, found before the container exists.

ds01 mounts the user's MLflow credentials at ``~/.mlflow``, so it must know ``~`` as Docker
(runc) will set it: the create body's ``Env`` ``HOME``; else the image's ``Config.Env``
``HOME``; else the home of the container's user (the body's ``User``, else the image's, else
root) in the image's own ``/etc/passwd``; else ``/`` (what runc gives a user the image does not
list, and root in an image without ``/etc/passwd``).

The image's ``/etc/passwd`` is read from its layers on the host (the ``overlay2`` storage
driver: ``GraphDriver`` names the directories), top layer first, never following a link (a
layer is the image author's; ``etc`` or ``passwd`` may be a link to anywhere on the host), and
remembered per image id and user: an image never changes. Where the layers cannot be read
(another storage driver), root's home is taken as ``/root`` and any other user's as ``/``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from typing import Any

MAX_PASSWD = 1 << 20  # bytes read of an image's /etc/passwd
_cache: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def env_value(env: Sequence[Any] | None, key: str) -> str | None:
    """The last ``key=…`` of a Docker ``Env`` list (None: not set)."""
    found = None
    for item in env or []:
        name, sep, value = str(item).partition("=")
        if sep and name == key:
            found = value
    return found


def container_home(body: Mapping[str, Any], image: Mapping[str, Any] | None) -> str:
    """``HOME`` of the container ``body`` creates from ``image`` (its inspect; None: unknown)."""
    home = env_value(body.get("Env"), "HOME")
    if home:
        return home
    config = (image or {}).get("Config") or {}
    home = env_value(config.get("Env"), "HOME")
    if home:
        return home
    user = str(body.get("User") or config.get("User") or "").split(":", 1)[0] or "root"
    image_id = str((image or {}).get("Id", ""))
    with _lock:
        known = _cache.get((image_id, user))
    if known is not None:
        return known
    passwd = image_passwd(image or {})
    if passwd is None:
        return "/root" if user in ("root", "0") else "/"
    home = passwd_home(passwd, user) or "/"
    if image_id:
        with _lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[(image_id, user)] = home
    return home


def passwd_home(text: str, user: str) -> str | None:
    """``user``'s (a name or a uid) home in an ``/etc/passwd`` text."""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 7:
            continue
        if (fields[2] if user.isdigit() else fields[0]) == user:
            return fields[5] or None
    return None


def image_passwd(image: Mapping[str, Any]) -> str | None:
    """The image's ``/etc/passwd`` ("" when it has none), None when its layers are unreadable."""
    driver = image.get("GraphDriver") or {}
    if driver.get("Name") != "overlay2":
        return None
    data = driver.get("Data") or {}
    layers = [data.get("UpperDir") or "", *str(data.get("LowerDir") or "").split(":")]
    layers = [layer for layer in layers if layer]
    if not layers:
        return None
    for layer in layers:
        try:
            found = _read_in_layer(layer)
        except OSError:
            return None
        if found is not None:
            return found
    return ""


def _read_in_layer(layer: str) -> str | None:
    """``etc/passwd`` of one layer: its text, "" when the layer deletes it, None when the layer
    does not touch it (look lower). No link is followed."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    top = os.open(layer, flags | os.O_DIRECTORY)
    try:
        try:
            etc = os.open("etc", flags | os.O_DIRECTORY, dir_fd=top)
        except FileNotFoundError:
            return None
        except OSError:  # a link or a whiteout where etc/ was: nothing readable here
            return ""
        try:
            try:
                info = os.stat("passwd", dir_fd=etc, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if not stat.S_ISREG(info.st_mode):  # a whiteout (deleted) or a link: none
                return ""
            fd = os.open("passwd", flags, dir_fd=etc)
            with os.fdopen(fd, "rb") as handle:
                return handle.read(MAX_PASSWD).decode("utf-8", "replace")
        finally:
            os.close(etc)
    finally:
        with contextlib.suppress(OSError):
            os.close(top)
