"""NVIDIA's dcgm-exporter (optional): does it answer, and does it name ds01's GPU holders?

ds01 keeps a file per GPU slot naming its holder (``allocation.owner_map_dir``); dcgm-exporter
turns that into an ``hpc_job`` label when its job-mapping directory
(``--hpc-job-mapping-dir`` / ``DCGM_HPC_JOB_MAPPING_DIR``) is that directory. Its settings are
read from the running process (its arguments and environment, the truth) or else from the
installed ``ds01-dcgm-exporter.service`` (packaging/systemd) and its drop-ins. A host with
neither has no DCGM exporter: that is reported, not a problem; a unit that is installed but
does not answer is.
"""

from __future__ import annotations

import os
import re
import shlex
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_core.services.doctor.findings import Finding, HostPaths

if TYPE_CHECKING:
    from ds01_core.framework.runtime import Runtime

CHECK = "dcgm-exporter"
PROGRAM = "dcgm-exporter"
DEFAULT_ADDRESS = ":9400"
RESTART = "`systemctl restart ds01-dcgm-exporter`; `journalctl -u ds01-dcgm-exporter` says why"


@dataclass(frozen=True)
class ExporterSettings:
    """Where the settings were read (``process 123`` or a unit file), and what they say."""

    source: str
    address: str
    mapping_dir: str | None


def settings_from(source: str, args: list[str], env: dict[str, str]) -> ExporterSettings:
    """The listen address and job-mapping directory from dcgm-exporter's flags over its
    environment (flags win, as in dcgm-exporter)."""
    address = env.get("DCGM_EXPORTER_LISTEN") or DEFAULT_ADDRESS
    mapping = env.get("DCGM_HPC_JOB_MAPPING_DIR") or None
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else ""
        if arg in ("-a", "--address"):
            address = following
        elif arg.startswith("--address="):
            address = arg.split("=", 1)[1]
        elif arg == "--hpc-job-mapping-dir":
            mapping = following or None
        elif arg.startswith("--hpc-job-mapping-dir="):
            mapping = arg.split("=", 1)[1] or None
    return ExporterSettings(source, address, mapping)


def running_exporter(proc_dir: str) -> ExporterSettings | None:
    """The first running dcgm-exporter's settings, from /proc; None when none runs."""
    try:
        entries = sorted((e for e in os.listdir(proc_dir) if e.isdigit()), key=int)
    except OSError:
        return None
    for pid in entries:
        base = Path(proc_dir) / pid
        try:
            if (base / "comm").read_text().strip() != PROGRAM:
                continue
            argv = (base / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        # a script runs as [interpreter, script, args...]: the flags follow the program
        starts = [i for i, arg in enumerate(argv) if os.path.basename(arg) == PROGRAM]
        args = [a for a in argv[(starts[0] + 1 if starts else 1) :] if a]
        try:
            raw = (base / "environ").read_bytes().decode(errors="replace").split("\0")
            env = dict(item.split("=", 1) for item in raw if "=" in item)
        except OSError:
            env = {}
        return settings_from(f"process {pid}", args, env)
    return None


def _expand(text: str, env: dict[str, str]) -> str:
    """systemd's ``${VAR}`` and ``$VAR`` in a command line."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def unit_settings(paths: tuple[str, ...]) -> ExporterSettings | None:
    """The settings of the first installed unit file (with its ``.d/*.conf`` drop-ins)."""
    for path in paths:
        unit = Path(path)
        if not unit.is_file():
            continue
        env: dict[str, str] = {}
        exec_start = ""
        files = [unit, *sorted(Path(f"{path}.d").glob("*.conf"))]
        for each in files:
            try:
                lines = each.read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.strip().partition("=")
                if key == "Environment":
                    for item in shlex.split(value):
                        name, _, val = item.partition("=")
                        env[name] = val
                elif key == "ExecStart":
                    exec_start = value  # an empty ExecStart= in a drop-in resets it
        args = shlex.split(_expand(exec_start, env))
        return settings_from(path, args[1:], env)
    return None


def probe_url(address: str) -> str:
    """The URL that reaches a listen address from this host (``:9400`` is every address)."""
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics"


def probe(url: str) -> str | None:
    """None when dcgm-exporter answers at ``url``; else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read(1 << 20).decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer from {url} ({reason})"
    if "DCGM_FI_" not in body:
        return f"{url} answers, but with no DCGM_FI_ metric: is that dcgm-exporter?"
    return None


def check_dcgm_exporter(runtime: Runtime, host: HostPaths) -> list[Finding]:
    """Whether dcgm-exporter answers, and whether it maps jobs from ds01's owner map."""
    settings = running_exporter(host.proc_dir) or unit_settings(host.dcgm_units)
    if settings is None:
        return [
            Finding(
                CHECK,
                PROGRAM,
                True,
                "not installed (no ds01-dcgm-exporter unit, no dcgm-exporter running): optional, "
                "ds01's own exporter reports GPU health without it",
            )
        ]
    url = probe_url(settings.address)
    problem = probe(url)
    findings = [
        Finding(CHECK, settings.source, False, problem, RESTART)
        if problem
        else Finding(CHECK, settings.source, True, f"answers on {url}")
    ]
    owner_map = str(runtime.config.allocation_owner_map_dir)
    fix = (
        f"set DCGM_HPC_JOB_MAPPING_DIR={owner_map} in ds01-dcgm-exporter.service "
        "(`systemctl edit ds01-dcgm-exporter`), then restart it"
    )
    if settings.mapping_dir is None:
        findings.append(
            Finding(
                CHECK,
                settings.source,
                False,
                "no job-mapping directory: its GPU metrics do not say which user holds a GPU",
                fix,
            )
        )
    elif os.path.realpath(settings.mapping_dir) != os.path.realpath(owner_map):
        findings.append(
            Finding(
                CHECK,
                settings.source,
                False,
                f"maps jobs from {settings.mapping_dir}, but ds01 writes its GPU owners to "
                f"{owner_map} (allocation.owner_map_dir)",
                fix,
            )
        )
    else:
        findings.append(
            Finding(CHECK, settings.source, True, f"job mapping from ds01's owner map {owner_map}")
        )
    return findings
