"""What the running engine was told: the ``-H`` addresses and options on dockerd's command line.

Read from ``/proc/<pid>/cmdline`` of every ``dockerd`` process, since systemd units and
``daemon.json`` can each add listening addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path


def strip_unix(address: str) -> str:
    """A socket path from a ``unix://`` address (``unix://`` alone: the default socket)."""
    return address.removeprefix("unix://") or "/var/run/docker.sock"


def hosts_from_args(args: Sequence[str]) -> list[str]:
    """The ``-H``/``--host`` addresses on a dockerd command line."""
    hosts = []
    for i, arg in enumerate(args):
        if arg in ("-H", "--host") and i + 1 < len(args):
            hosts.append(args[i + 1])
        elif arg.startswith("--host="):
            hosts.append(arg.split("=", 1)[1])
        elif arg.startswith("-H") and len(arg) > 2:
            hosts.append(arg[2:].lstrip("="))
    return hosts


def dockerd_args(proc_dir: str) -> list[list[str]]:
    """The arguments of every running ``dockerd``, its own name left out."""
    found = []
    for entry in Path(proc_dir).iterdir() if Path(proc_dir).is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args if a]
        if words and os.path.basename(words[0]) == "dockerd":
            found.append(words[1:])
    return found


def userns_remap(daemon_json: str, proc_dir: str) -> bool:
    """Whether the engine maps container root to an unprivileged uid (file or command line)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(Path(daemon_json).read_text()).get("userns-remap"):
            return True
    return any(arg.startswith("--userns-remap") for args in dockerd_args(proc_dir) for arg in args)
