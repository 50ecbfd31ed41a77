"""``ds01 admin gpu release|resume|holders``: let go of NVML for a MIG-mode switch or a GPU reset.

Every long-running ds01 process (the daemon, the API server, the gateway) keeps one NVML
session open, and with it ``/dev/nvidia*``: ``nvidia-smi -mig 1`` then needs a GPU reset, which
the driver refuses while any process holds the GPU. A release is a file in ``paths.runtime_dir``
that every ds01 process reads: each closes its session within a few seconds and allocates
nothing until the release ends (``resume``, or the time given runs out; a reboot clears it).
The next use opens a fresh session, so handles from before a reset are never used again.

``release`` waits (``wait`` seconds) until no ds01 process holds a GPU device, and answers with
every process that still does (nvidia-persistenced, DCGM and users' own jobs hold them too, and
the reset needs them gone as well).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from ds01_core.domain.gpu.access import GpuUnavailableError, end_release, write_release
from ds01_core.domain.model import Event, utc_text
from ds01_core.services.errors import Invalid
from ds01_core.services.operations import Operation, Param, ServiceContext

#: the longest release: a forgotten one must not keep the GPUs unallocatable for days
MAX_RELEASE_MINUTES = 24 * 60


def device_holders(proc_dir: str = "/proc") -> list[dict[str, Any]]:
    """Processes with a ``/dev/nvidia*`` file open: pid, name, the devices, and whether it is
    one of ds01's own (only those the release waits for). Root sees every process."""
    found = []
    for entry in Path(proc_dir).iterdir():
        if not entry.name.isdigit():
            continue
        devices = set()
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("/dev/nvidia"):
                    devices.add(target)
        except OSError:
            continue  # gone, or not ours to read
        if not devices:
            continue
        name = _read(entry / "comm").strip()
        argv = _read(entry / "cmdline").split("\0")[:2]  # ds01d, or python3 /usr/bin/ds01d
        ours = name.startswith("ds01") or any(Path(a).name.startswith("ds01") for a in argv)
        found.append(
            {"pid": int(entry.name), "name": name, "devices": sorted(devices), "ds01": ours}
        )
    return sorted(found, key=lambda p: p["pid"])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def release(
    ctx: ServiceContext, minutes: float = 30.0, reason: str = "", wait: float = 10.0
) -> dict[str, Any]:
    """Ask every ds01 process to close NVML for ``minutes``; wait up to ``wait`` seconds for
    them to let go; answer with what still holds the GPUs."""
    if not 0 < minutes <= MAX_RELEASE_MINUTES:
        raise Invalid(f"minutes must be between 0 and {MAX_RELEASE_MINUTES} (24 hours)")
    if not 0 <= wait <= 300:
        raise Invalid("wait must be between 0 and 300 seconds")
    runtime = ctx.runtime
    until = runtime.now() + dt.timedelta(minutes=minutes)
    runtime_dir = Path(runtime.config.paths.runtime_dir)
    record = write_release(runtime_dir, until, ctx.caller.name, reason)
    _let_go(ctx)
    runtime.events.append(
        Event(
            "gpu.nvml_released",
            ctx.caller.name,
            "admin",
            {"until": record["until"], "reason": reason},
        )
    )
    deadline = time.monotonic() + wait
    holders = device_holders()
    while any(h["ds01"] for h in holders) and time.monotonic() < deadline:
        time.sleep(0.5)
        holders = device_holders()
    return {
        "released_until": record["until"],
        "by": ctx.caller.name,
        "reason": reason,
        "holders": holders,
        "ds01_let_go": not any(h["ds01"] for h in holders),
    }


def _let_go(ctx: ServiceContext) -> None:
    """This process closes its own session now (the others within a few seconds)."""
    with contextlib.suppress(GpuUnavailableError):
        ctx.runtime.gpu  # noqa: B018 - the access sees the release and closes the session


def resume(ctx: ServiceContext) -> dict[str, Any]:
    """End the release now: each ds01 process opens NVML afresh on its next use."""
    ended = end_release(Path(ctx.runtime.config.paths.runtime_dir))
    if ended:
        ctx.runtime.events.append(Event("gpu.nvml_resumed", ctx.caller.name, "admin", {}))
    return {"resumed": ended, "at": utc_text(ctx.runtime.now())}


def holders(ctx: ServiceContext) -> dict[str, Any]:
    """The GPU provider's state and every process with a GPU device open."""
    return {"access": ctx.runtime.gpu_state(), "holders": device_holders()}


OPERATIONS = (
    Operation(
        "admin.gpu.release",
        "POST",
        "/v1/admin/gpu/release",
        release,
        (
            Param("minutes", "float", default=30.0),
            Param("reason", default=""),
            Param("wait", "float", default=10.0),
        ),
        admin=True,
        summary="Close every ds01 NVML session for a MIG change or GPU reset.",
    ),
    Operation(
        "admin.gpu.resume",
        "POST",
        "/v1/admin/gpu/resume",
        resume,
        admin=True,
        summary="End a GPU release: ds01 opens NVML again.",
    ),
    Operation(
        "admin.gpu.holders",
        "GET",
        "/v1/admin/gpu/holders",
        holders,
        admin=True,
        summary="The GPU provider's state and the processes holding /dev/nvidia*.",
    ),
)
