"""What Slurm says about a job, read from ``scontrol show job -d -o`` and ``squeue``.

The GPUs a job holds on each node are read from Slurm's own record (``-d``: per node, the GRES
and their indexes, ``GRES=gpu:a100:1(IDX:0)``), never from a job's environment, which the job
script could set to anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from ds01_slurm.config import SlurmConfig
from ds01_slurm.slurm_cmd import SlurmError, run_slurm

#: states in which a job holds its nodes (its container may run)
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING", "STAGE_OUT"})
#: states a job never leaves
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
_KEY = re.compile(r"(?:^|\s)([A-Za-z_:/]+)=")
_IDX = re.compile(r"\(IDX:([0-9,\-N/A]*)\)")
_USER = re.compile(r"^(.*)\((\d+)\)$")


def key_values(line: str) -> list[tuple[str, str]]:
    """``KEY=value KEY2=value with spaces`` → pairs, in order (keys may repeat: the per-node
    detail of ``-d`` repeats ``Nodes=`` … ``GRES=``)."""
    marks = list(_KEY.finditer(line))
    pairs = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(line)
        pairs.append((mark.group(1), line[mark.end() : end].strip()))
    return pairs


def gpu_indexes(gres: str) -> list[int]:
    """The GPU indexes in a node's GRES detail: ``gpu:1g.10gb:2(IDX:1-2),gpu:a100:1(IDX:0)`` →
    [0, 1, 2] (sorted; only ``gpu`` GRES)."""
    found: set[int] = set()
    for part in re.split(r",(?=[a-z_]+:)", gres):
        if not part.startswith("gpu"):
            continue
        match = _IDX.search(part)
        if match is None or match.group(1) in ("", "N/A"):
            continue
        for item in match.group(1).split(","):
            low, _, high = item.partition("-")
            found.update(range(int(low), int(high or low) + 1))
    return sorted(found)


class BadJobId(SlurmError):
    """What the user typed is not a job id."""


@attrs.frozen
class JobRecord:
    """One job as Slurm has it now."""

    job_id: str
    name: str
    user: str
    uid: int | None
    state: str
    reason: str
    #: node name → the GPU GRES indexes the job holds there
    gpus_by_node: dict[str, list[int]]
    nodes: str = ""
    batch_host: str = ""
    run_time: str = ""
    time_limit: str = ""
    submit_time: str = ""
    start_time: str = ""
    end_time: str = ""
    exit_code: str = ""
    stdout: str = ""
    work_dir: str = ""
    comment: str = ""
    tres: str = ""
    partition: str = ""
    array_job_id: str = ""
    array_task_id: str = ""

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def parse_job(line: str) -> JobRecord:
    """One line of ``scontrol show job -d -o``."""
    pairs = key_values(line)
    top: dict[str, str] = {}
    gpus: dict[str, list[int]] = {}
    node: str | None = None
    for key, value in pairs:
        if key == "Nodes":
            node = value
            continue
        if node is not None and key == "GRES":
            for name in expand_nodes(node):
                gpus.setdefault(name, []).extend(gpu_indexes(value))
            continue
        if node is not None and key in ("CPU_IDs", "Mem"):
            continue
        top.setdefault(key, value)
    user, uid = top.get("UserId", ""), None
    if match := _USER.match(user):
        user, uid = match.group(1), int(match.group(2))
    return JobRecord(
        job_id=top.get("JobId", ""),
        name=top.get("JobName", ""),
        user=user,
        uid=uid,
        state=top.get("JobState", ""),
        reason=top.get("Reason", ""),
        gpus_by_node={k: sorted(set(v)) for k, v in gpus.items()},
        nodes=top.get("NodeList", ""),
        batch_host=top.get("BatchHost", ""),
        run_time=top.get("RunTime", ""),
        time_limit=top.get("TimeLimit", ""),
        submit_time=top.get("SubmitTime", ""),
        start_time=top.get("StartTime", ""),
        end_time=top.get("EndTime", ""),
        exit_code=top.get("ExitCode", ""),
        stdout=top.get("StdOut", ""),
        work_dir=top.get("WorkDir", ""),
        comment=top.get("Comment", "") if top.get("Comment") != "(null)" else "",
        tres=top.get("TRES", ""),
        partition=top.get("Partition", ""),
        array_job_id=top.get("ArrayJobId", ""),
        array_task_id=top.get("ArrayTaskId", ""),
    )


def expand_nodes(text: str) -> list[str]:
    """``n[1-3,5],x`` → ``n1 n2 n3 n5 x`` (Slurm's host lists, one level of brackets)."""
    names: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", text):
        part = part.strip(",")
        match = re.match(r"^(.*)\[([^\]]*)\](.*)$", part)
        if not match:
            if part:
                names.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for item in ranges.split(","):
            low, _, high = item.partition("-")
            width = len(low)
            for n in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{n:0{width}d}{suffix}")
    return names


def show_job(cfg: SlurmConfig, job_id: str) -> JobRecord | None:
    """Slurm's record of one job, None when Slurm no longer knows it (an array's id: its first
    task's)."""
    found = show_jobs(cfg, job_id)
    return found[0] if found else None


def show_jobs(cfg: SlurmConfig, job_id: str) -> list[JobRecord]:
    """Slurm's records for ``job_id``: one job, or every task of an array named by its own id;
    empty when Slurm no longer knows it."""
    if not re.fullmatch(r"\d+(_\d+)?", job_id):
        raise BadJobId(f"{job_id!r} is not a job id (a number, or ARRAY_TASK like 12_3)")
    try:
        out = run_slurm(cfg, "scontrol", ["show", "job", "-d", "-o", job_id])
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return []
        raise
    return [parse_job(line) for line in out.splitlines() if line.strip()]


#: ``squeue`` fields, tab-separated; the name last, so that it may hold anything but a newline
SQUEUE_FIELDS = (
    "job_id",
    "user",
    "state",
    "run_time",
    "time_limit",
    "nodes",
    "reason",
    "gres",
    "start_time",
    "submit_time",
    "partition",
    "name",
)
SQUEUE_FORMAT = "\t".join(("%i", "%u", "%T", "%M", "%l", "%N", "%r", "%b", "%S", "%V", "%P", "%j"))


def queue(cfg: SlurmConfig, users: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every job Slurm has in its queue (pending and running, and finished ones it still
    remembers), for ``users`` when given: one ``squeue`` call. Each row says whether the job
    is over (``final``), so that no caller keeps its own copy of Slurm's final states."""
    args = ["-h", "-a", "-t", "all", "-o", SQUEUE_FORMAT]
    if users is not None:
        if not users:
            return []
        args += ["-u", ",".join(users)]
    return list(parse_queue(run_slurm(cfg, "squeue", args).splitlines()))


def parse_queue(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        cells = line.split("\t", len(SQUEUE_FIELDS) - 1)
        if len(cells) == len(SQUEUE_FIELDS):
            row: dict[str, Any] = dict(zip(SQUEUE_FIELDS, cells, strict=True))
            row["final"] = row["state"].split()[0] in FINAL_STATES if row["state"] else False
            yield row
