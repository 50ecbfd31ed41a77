"""Homes and workspaces on ``nosuid,nodev`` filesystems, or container root remapped."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_core.services.doctor.dockerd_args import userns_remap
from ds01_core.services.doctor.findings import Finding, HostPaths

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime


def _mount_options(mounts: str, path: str) -> tuple[str, set[str]] | None:
    """(mount point, options) of the filesystem ``path`` is on, from a mounts table."""
    best: tuple[str, set[str]] | None = None
    with contextlib.suppress(OSError):
        for line in Path(mounts).read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            point = fields[1].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best[0])):
                best = (point, set(fields[3].split(",")))
    return best


def check_user_mounts(runtime: Runtime, host: HostPaths) -> list[Finding]:
    """A container's root can write root-owned set-uid programs and device nodes into a
    bind-mounted home; its owner can then run them on the host. Homes and workspaces must be
    on ``nosuid,nodev`` filesystems, or the engine must map container root to an unprivileged
    uid (``userns-remap``)."""
    if userns_remap(host.daemon_json, host.proc_dir):
        return [Finding("user-mounts", "userns-remap", True, "the engine remaps container root")]
    config = runtime.config
    roots: list[str] = [*config.detection.home_roots]
    roots += [r.split("{user}")[0].rstrip("/") or "/" for r in config.gateway.workspace_roots]
    findings = []
    for root in dict.fromkeys(roots):
        found = _mount_options(host.mounts, os.path.realpath(root))
        if found is None:
            continue
        point, options = found
        missing = sorted({"nosuid", "nodev"} - options)
        if missing:
            remount = (
                f"put {root} on a filesystem of its own mounted nosuid,nodev"
                if point == "/"
                else f"mount {point} with nosuid,nodev (in /etc/fstab, then `mount -o "
                f"remount,nosuid,nodev {point}`)"
            )
            findings.append(
                Finding(
                    "user-mounts",
                    root,
                    False,
                    f"{root} is on {point}, mounted without {','.join(missing)}: a container's "
                    "root can leave set-uid programs or device nodes there for its owner",
                    f'{remount}, or set "userns-remap": "default" in /etc/docker/daemon.json',
                )
            )
        else:
            findings.append(Finding("user-mounts", root, True, f"{point} is nosuid,nodev"))
    return findings
