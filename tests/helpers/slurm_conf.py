"""The files of a test Slurm: slurm.conf, gres.conf and the fake GPU devices they name.

Used by tests/helpers/slurm.py, which starts the daemons on them. One host runs every node
(``NodeHostname`` is this host, each slurmd has its own port and ``%n`` paths), all on loopback.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

#: NVIDIA's character-device major; the extra devices (MIG capabilities) get OTHER_MAJOR
NVIDIA_MAJOR = 195
OTHER_MAJOR = 235


def host_name() -> str:
    """This host's short name: the first node's default name and every node's NodeHostname."""
    return socket.gethostname().split(".")[0]


@attrs.frozen
class SlurmNode:
    """One slurmd: its node name, its fake GPUs and the CPUs it claims (not checked against
    the host's: ``SlurmdParameters=config_overrides``)."""

    name: str
    gpus: int
    cpus: int = 2


def parse_idx(text: str) -> tuple[int, ...]:
    """``0-1,3`` → (0, 1, 3); Slurm's ``N/A`` (no indices) → ()."""
    found: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part or part == "N/A":
            continue
        low, _, high = part.partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return tuple(found)


def node_ports(nodes: Sequence[SlurmNode], slurmd_port: int, extra_port: int) -> dict[str, int]:
    """The first node's slurmd on ``slurmd_port``, the others on ``extra_port``, +1, …"""
    return {
        node.name: slurmd_port if i == 0 else extra_port + i - 1 for i, node in enumerate(nodes)
    }


def make_devices(dev_dir: Path, nodes: Sequence[SlurmNode], devices: Sequence[str]) -> None:
    """nvidia0… numbered across the nodes in order, and the extra ``devices`` (any major)."""
    dev_dir.mkdir(mode=0o755, exist_ok=True)
    paths = [(f"nvidia{i}", NVIDIA_MAJOR, i) for i in range(sum(n.gpus for n in nodes))]
    for i, relative in enumerate(devices):
        digits = re.search(r"(\d+)$", relative)
        paths.append((relative, OTHER_MAJOR, int(digits.group(1)) if digits else i))
    for relative, major, minor in paths:
        path = dev_dir / relative
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if path.is_char_device() and os.major(path.stat().st_rdev) == major:
            continue
        path.unlink(missing_ok=True)
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))


def default_gres_conf(dev_dir: Path, nodes: Sequence[SlurmNode]) -> str:
    lines, first = ["AutoDetect=off"], 0
    for node in nodes:
        if node.gpus:
            last = first + node.gpus - 1
            files = f"nvidia{first}" if last == first else f"nvidia[{first}-{last}]"
            lines.append(f"NodeName={node.name} Name=gpu File={dev_dir}/{files}")
        first += node.gpus
    return "\n".join(lines) + "\n"


def _expand(path: str) -> list[str]:
    """Slurm's ``nvidia[0-1,3]`` notation (one bracket) as the paths it names."""
    match = re.fullmatch(r"(.*)\[([^\]]+)\](.*)", path)
    if not match:
        return [path]
    head, ranges, tail = match.groups()
    return [f"{head}{i}{tail}" for i in parse_idx(ranges)]


def missing_devices(gres_conf: str) -> list[str]:
    """The files gres.conf names that are not character devices: slurmd waits ~20 s on such a
    file before it gives up, so they are refused before it starts."""
    missing = []
    for key, value in re.findall(r"\b(File|MultipleFiles)=(\S+)", gres_conf):
        parts = value.split(",") if key == "MultipleFiles" else [value]
        for path in (p for part in parts for p in _expand(part)):
            if not Path(path).is_char_device():
                missing.append(path)
    return missing


def slurm_conf(
    directory: Path,
    nodes: Sequence[SlurmNode],
    node_gres: Mapping[str, str],
    ctld_port: int,
    ports: Mapping[str, int],
    extra_conf: str,
) -> str:
    host = host_name()
    try:
        on_loopback = socket.gethostbyname(host) == "127.0.0.1"
    except OSError:
        on_loopback = False
    # with these the daemons bind the address the host name resolves to: loopback only here
    comm = "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny" if on_loopback else ""
    node_lines = []
    for node in nodes:
        gres = node_gres.get(node.name, f"gpu:{node.gpus}" if node.gpus else "")
        node_lines.append(
            f"NodeName={node.name} NodeHostname={host} NodeAddr=127.0.0.1 "
            f"Port={ports[node.name]} CPUs={node.cpus} RealMemory=1000 "
            + (f"Gres={gres} " if gres else "")
            + "State=UNKNOWN"
        )
    return f"""\
ClusterName=ds01test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
{comm}
StateSaveLocation={directory}/spool/ctld
SlurmctldPidFile={directory}/run/slurmctld.pid
SlurmctldLogFile={directory}/log/slurmctld.log
SlurmctldPort={ctld_port}
# %n = node name: each slurmd on this host has its own spool, pid file and log
SlurmdSpoolDir={directory}/spool/d-%n
SlurmdPidFile={directory}/run/slurmd-%n.pid
SlurmdLogFile={directory}/log/slurmd-%n.log
SlurmdPort={ports[nodes[0].name]}
# nodes may claim more CPUs than the host has
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# schedule and estimate start times every second (defaults: 60 s and 30 s)
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
KillWait=2
# finished jobs stay visible to scontrol for 5 minutes
MinJobAge=300
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
{chr(10).join(node_lines)}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
{extra_conf}
"""


def check_directory(directory: Path) -> None:
    """Users must reach slurm.conf: every directory above it must let others through."""
    directory.chmod(0o755)
    for parent in directory.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise ValueError(
                f"{parent} is not searchable by other users, so they cannot read "
                f"{directory}/slurm.conf: put the cluster under a world-reachable directory "
                "(e.g. tempfile.mkdtemp(dir='/tmp'))"
            )
