"""A real Slurm (munged, slurmctld, one or more slurmd) on loopback with fake GPUs, for tests.

``running_slurm(directory)`` writes slurm.conf and gres.conf under ``directory``, makes the fake
GPUs as character devices (``directory/dev/nvidiaN``, major 195 like NVIDIA's), starts the
daemons in the foreground as children of the test, waits until every node is idle and stops
what it started on the way out. A second node is a second ``slurmd -N NAME`` on this host with
its own port (scripts in /work/shared/recipes/slurm/ show the same by hand). The Slurm ports are
fixed by the configuration, so only one such cluster can run on a machine at a time: a busy
controller port is refused with a clear error rather than fought over.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from tests.helpers.slurm_conf import (
    SlurmNode,
    check_directory,
    default_gres_conf,
    host_name,
    make_devices,
    missing_devices,
    node_ports,
    parse_idx,
    slurm_conf,
)

__all__ = [
    "NodeGres",
    "SlurmCluster",
    "SlurmCommandError",
    "SlurmJob",
    "SlurmNode",
    "ds01_gres",
    "host_name",
    "missing_tools",
    "parse_job",
    "running_slurm",
]

MUNGED = "/usr/sbin/munged"
MUNGE_RUN = Path("/run/munge")
MUNGE_KEY = Path("/etc/munge/munge.key")
SETUP_HINT = "install Slurm and munge with: bash scripts/ci/setup-slurm.sh (as root)"
START_TIMEOUT = 30.0
#: states after which a job never runs again
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
    | {"PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
)
SQUEUE_FIELDS = {
    "id": "%i",
    "name": "%j",
    "user": "%u",
    "state": "%T",
    "reason": "%r",
    "nodes": "%N",
    "gres": "%b",
}


def missing_tools() -> list[str]:
    """The programs this harness needs that this machine lacks."""
    tools = ["slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue", "munge"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not os.access(MUNGED, os.X_OK):
        missing.append(MUNGED)
    return missing


@attrs.frozen
class NodeGres:
    """One node's share of a job's GRES, from ``scontrol show job -d``: ``GRES=gpu:1(IDX:1)``."""

    node: str
    gres: str
    idx: tuple[int, ...]


class SlurmJob(dict[str, str]):
    """``scontrol show job -d -o``'s KEY=VALUE pairs, with the line itself (``raw``) and the
    per-node GRES detail (``gres``, one entry per node line of the detail)."""

    def __init__(self, raw: str, fields: Mapping[str, str], gres: Sequence[NodeGres]) -> None:
        super().__init__(fields)
        self.raw = raw
        self.gres = list(gres)


class SlurmCommandError(subprocess.CalledProcessError):
    """A Slurm command that failed, with what it printed (CalledProcessError's message lacks it)."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
            f"stdout: {(self.stdout or '').strip()}\nstderr: {(self.stderr or '').strip()}"
        )


_KEY = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_:/]*)=")
_GRES_PART = re.compile(r"([^,(]+)\(IDX:([^)]*)\)")


def parse_job(raw: str) -> SlurmJob:
    """One ``scontrol show job -d -o`` line. A value runs up to the next `` KEY=``; the detail's
    repeated keys (``Nodes=``, ``CPU_IDs=``, ``Mem=``, ``GRES=``) keep their first value in the
    dict and every node's GRES in ``gres``."""
    raw = raw.strip()
    matches = list(_KEY.finditer(raw))
    pairs: list[tuple[str, str]] = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(raw)
        pairs.append((match.group(1), raw[match.end() : end].strip()))
    fields: dict[str, str] = {}
    gres: list[NodeGres] = []
    node = ""
    for key, value in pairs:
        fields.setdefault(key, value)
        if key == "Nodes":
            node = value
        elif key == "GRES" and node:
            idx: list[int] = []
            for part in _GRES_PART.finditer(value):
                idx.extend(parse_idx(part.group(2)))
            gres.append(NodeGres(node, value, tuple(idx)))
    return SlurmJob(raw, fields, gres)


@attrs.define
class SlurmCluster:
    """A running cluster: its files, and the commands tests need against it."""

    directory: Path
    conf: Path
    env: dict[str, str]
    nodes: tuple[SlurmNode, ...]
    dev_dir: Path

    def run(
        self, *args: str, user: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """A Slurm command as root, or as ``user`` (``runuser``, a clean environment with only
        SLURM_CONF added, the user's home as the working directory)."""
        if user is None:
            argv, env, cwd = list(args), {**os.environ, **self.env}, None
        else:
            home = pwd.getpwnam(user).pw_dir
            clean = {
                "HOME": home,
                "USER": user,
                "LOGNAME": user,
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                **self.env,
            }
            argv = ["runuser", "-u", user, "--", "env", "-i"]
            argv += [f"{key}={value}" for key, value in clean.items()] + list(args)
            env, cwd = None, home
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
        )
        if check and done.returncode != 0:
            raise SlurmCommandError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def submit(self, *args: str, user: str | None = None) -> str:
        """``sbatch --parsable ARGS`` (as ``user``): the new job's id."""
        out = self.run("sbatch", "--parsable", *args, user=user).stdout.strip()
        return out.split(";")[0]

    def job(self, job_id: str | int) -> SlurmJob:
        """Slurm's record of the job, as root sees it."""
        return parse_job(self.run("scontrol", "show", "job", "-d", "-o", str(job_id)).stdout)

    def wait_state(self, job_id: str | int, states: set[str], timeout: float = 30) -> str:
        """Poll until the job's state is one of ``states`` and return it; fail at once if it
        ends in another state, or after ``timeout`` seconds, with Slurm's record."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job_id)
            state = record.get("JobState", "")
            if state in states:
                return state
            if state in FINAL_STATES or time.monotonic() > deadline:
                why = "ended" if state in FINAL_STATES else f"still there after {timeout:g}s"
                raise AssertionError(
                    f"job {job_id} is {state} ({why}), not {sorted(states)}: {record.raw}"
                )
            time.sleep(0.1)

    def squeue(
        self, user: str | None = None, *, as_user: str | None = None
    ) -> list[dict[str, str]]:
        """The queue (``user``'s jobs only when given), as ``as_user`` sees it (root when None):
        one dict per job with the keys of SQUEUE_FIELDS."""
        fmt = "\t".join(SQUEUE_FIELDS.values())
        args = ["squeue", "-h", "-o", fmt] + (["-u", user] if user else [])
        out = self.run(*args, user=as_user).stdout
        return [
            dict(zip(SQUEUE_FIELDS, line.split("\t"), strict=True))
            for line in out.splitlines()
            if line.strip()
        ]

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of every daemon log, to explain a failure."""
        parts = []
        for path in sorted((self.directory / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _port_busy(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode != 0:
            return False
        check = subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


class _Daemons:
    """The processes this harness started, stopped in reverse order by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str], **kw: object) -> None:
        with open(self.log_dir / f"{name}.out", "wb") as out:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env), **kw
            )
        self.procs.append((name, proc))

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.procs)

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.procs if p.poll() is not None]

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def _stepds_using(spool: Path) -> list[int]:
    """slurmstepd processes (they outlive slurmd) holding a file under this cluster's spool."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not os.readlink(proc / "exe").endswith("slurmstepd"):
                continue
            if any(os.readlink(fd).startswith(str(spool)) for fd in (proc / "fd").iterdir()):
                found.append(int(proc.name))
    return found


def _cancel_all(cluster: SlurmCluster) -> None:
    """Cancel every job and give them KillWait to end, so no job step outlives the cluster."""
    with contextlib.suppress(Exception):
        ids = cluster.run("squeue", "-h", "-o", "%A", timeout=5).stdout.split()
        if ids:
            cluster.run("scancel", *ids, check=False, timeout=5)
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and cluster.run(
                    "squeue", "-h", "-t", "RUNNING,COMPLETING,CONFIGURING", "-o", "%A", timeout=5
                ).stdout.strip()
            ):
                time.sleep(0.2)


def _wait_idle(cluster: SlurmCluster, daemons: _Daemons) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    names = {node.name for node in cluster.nodes}
    states: dict[str, str] = {}
    while True:
        # sinfo against a dead controller hangs ~10 s: look at the daemons first
        if dead := daemons.dead():
            raise RuntimeError(
                f"Slurm did not start: {', '.join(dead)} exited\n{cluster.log_tail()}"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            out = cluster.run("sinfo", "-h", "-N", "-o", "%N %T", check=False, timeout=5).stdout
            states = dict(line.split(None, 1) for line in out.splitlines() if " " in line)
            if set(states) >= names and all(states[n] == "idle" for n in names):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Slurm's nodes were not idle within {START_TIMEOUT:g}s (last: {states})\n"
                + cluster.log_tail()
            )
        time.sleep(0.2)


@contextlib.contextmanager
def running_slurm(
    directory: Path,
    nodes: Sequence[SlurmNode] | None = None,
    *,
    gres_conf: str | None = None,
    node_gres: Mapping[str, str] | None = None,
    devices: Sequence[str] = (),
    extra_conf: str = "",
    ctld_port: int = 6817,
    slurmd_port: int = 6818,
    extra_port: int = 6828,
) -> Iterator[SlurmCluster]:
    """Munge (unless one already runs), slurmctld and a slurmd per node, idle and ready; all
    of it stopped, jobs included, on the way out. ``extra_conf`` is appended to slurm.conf
    (e.g. ``PrivateData=jobs``). Needs root."""
    if os.geteuid() != 0:
        raise PermissionError("running_slurm starts Slurm's daemons: it needs root")
    if missing := missing_tools():
        raise RuntimeError(f"Slurm is not installed (missing: {', '.join(missing)}); {SETUP_HINT}")
    if _port_busy(ctld_port):
        raise RuntimeError(
            f"port {ctld_port} (slurmctld) is in use: another Slurm is running on this machine "
            "and only one can; wait for it to stop (or stop it if it is yours)"
        )
    nodes = tuple(nodes or (SlurmNode(host_name(), gpus=2),))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    check_directory(directory)
    for sub in ("spool", "log", "run"):
        shutil.rmtree(directory / sub, ignore_errors=True)
        (directory / sub).mkdir(mode=0o755)
    dev_dir = directory / "dev"
    make_devices(dev_dir, nodes, devices)
    ports = node_ports(nodes, slurmd_port, extra_port)
    conf = directory / "slurm.conf"
    conf.write_text(slurm_conf(directory, nodes, node_gres or {}, ctld_port, ports, extra_conf))
    gres = directory / "gres.conf"
    gres.write_text(gres_conf if gres_conf is not None else default_gres_conf(dev_dir, nodes))
    if missing := missing_devices(gres.read_text()):
        raise ValueError(
            f"gres.conf names files that are not character devices: {', '.join(missing)}; "
            f"create them with devices= (relative to {dev_dir})"
        )
    for node in nodes:
        (directory / "spool" / f"d-{node.name}").mkdir(mode=0o755)
    conf.chmod(0o644)
    gres.chmod(0o644)
    cluster = SlurmCluster(directory, conf, {"SLURM_CONF": str(conf)}, nodes, dev_dir)
    env = {**os.environ, **cluster.env}
    daemons = _Daemons(directory / "log")
    try:
        if not _munge_works():
            if not MUNGE_KEY.exists():
                raise RuntimeError(f"{MUNGE_KEY} is missing; {SETUP_HINT}")
            MUNGE_RUN.mkdir(mode=0o755, exist_ok=True)
            shutil.chown(MUNGE_RUN, "munge", "munge")
            daemons.start("munged", [MUNGED, "--foreground"], env, user="munge", group="munge")
            deadline = time.monotonic() + 5
            while not _munge_works():
                if daemons.dead() or time.monotonic() > deadline:
                    raise RuntimeError(f"munged did not start\n{cluster.log_tail()}")
                time.sleep(0.05)
        daemons.start("slurmctld", ["slurmctld", "-D", "-i"], env)
        for node in nodes:
            daemons.start(f"slurmd-{node.name}", ["slurmd", "-D", "-N", node.name], env)
        _wait_idle(cluster, daemons)
        yield cluster
    finally:
        if daemons.alive("slurmctld"):
            _cancel_all(cluster)
        daemons.stop()
        for pid in _stepds_using(directory / "spool"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory / "spool", ignore_errors=True)
        shutil.rmtree(directory / "run", ignore_errors=True)


def ds01_gres(config: Path) -> tuple[str, str]:
    """gres.conf and the node's ``Gres=`` as ``ds01 admin slurm config`` generates them for the
    ds01 configuration ``config`` (what a test's Slurm must be told)."""
    from ds01_core.framework.runtime import load_runtime  # lazy: only tests of ds01-slurm
    from ds01_slurm.generate import generate
    from ds01_slurm.settings import slurm_config

    runtime = load_runtime(str(config))
    try:
        generated = generate(runtime, slurm_config(runtime))
    finally:
        runtime.close()
    return generated.gres_conf, generated.node_gres
