"""``ds01 admin doctor``'s Slurm checks: does Slurm see the GPUs the way ds01 does?

A job's GPUs reach ds01 as GRES indexes; they mean the right slots only if Slurm's gres.conf
lists ds01's GPUs in ds01's order, and only if nothing else of ds01 holds them. Each check is
one finding naming the node, with the fix when it fails.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ds01_core.api import DockerError, DoctorFinding, live_allocations
from ds01_slurm.config import SlurmConfig
from ds01_slurm.generate import gres_line
from ds01_slurm.gres import GresMismatch, SlurmGpu, node_name, slurm_gpus
from ds01_slurm.jobs import expand_nodes, key_values
from ds01_slurm.settings import JOB_LABEL, slurm_config
from ds01_slurm.slurm_cmd import SlurmError, SlurmUnavailable, run_slurm

if TYPE_CHECKING:
    from ds01_core.api import Runtime

REGENERATE = (
    "run `ds01 admin slurm config --output-dir DIR`, install its gres.conf and node line, "
    "then restart slurmd (and slurmctld when the count changed)"
)
_GRES_ITEM = re.compile(r"^gpu(?::([^:(]+))?:(\d+)")


def doctor_checks(runtime: Runtime) -> list[DoctorFinding]:
    """Every Slurm check, in order; later checks are skipped when Slurm does not answer."""
    cfg = slurm_config(runtime)
    node = node_name(cfg)
    subject = f"slurm node {node}"
    if not cfg.gpus:  # a login node, or a server with the plugin installed and Slurm unused
        return [
            DoctorFinding(
                "slurm gpus",
                subject,
                True,
                "plugins.slurm.gpus names no GPU: this server lends none to Slurm",
            )
        ]
    try:
        gpus = slurm_gpus(runtime, cfg)
    except (GresMismatch, OSError) as exc:
        return [DoctorFinding("slurm gpus", subject, False, f"ds01's GPUs for Slurm: {exc}")]
    return [
        *_check_slurm_node(cfg, node, gpus, subject),
        _check_gres_conf(cfg, node, gpus, subject),
        _check_allocations(runtime, gpus, subject),
    ]


def _check_slurm_node(
    cfg: SlurmConfig, node: str, gpus: list[SlurmGpu], subject: str
) -> list[DoctorFinding]:
    """Slurm answers; it knows this node; the node's ``Gres=`` is ds01's GPUs for Slurm."""
    try:
        out = run_slurm(cfg, "scontrol", ["show", "node", "-d", "-o", node], timeout=10)
    except SlurmUnavailable as exc:
        fix = "start slurmctld (systemctl start slurmctld), or set plugins.slurm.slurm_conf"
        return [DoctorFinding("slurm controller", subject, False, str(exc), fix)]
    except SlurmError as exc:
        answers = DoctorFinding("slurm controller", subject, True, "slurmctld answers")
        fix = f"add `{_node_fix(gpus, node)}` to slurm.conf and restart slurmctld"
        unknown = f"Slurm does not know node {node}: {exc}"
        return [answers, DoctorFinding("slurm node", subject, False, unknown, fix)]
    fields = dict(key_values(out.strip()))
    return [
        DoctorFinding("slurm controller", subject, True, "slurmctld answers"),
        DoctorFinding(
            "slurm node", subject, True, f"Slurm knows {node} ({fields.get('State', '?')})"
        ),
        _check_node_gres(fields, gpus, node, subject),
    ]


def gres_counts(gres: str) -> Counter[str | None]:
    """``gpu:a100:2(S:0),gpu:1g.10gb:2,gpu:1`` → {"a100": 2, "1g.10gb": 2, None: 1}."""
    counts: Counter[str | None] = Counter()
    for item in re.split(r",(?![^(]*\))", gres):
        match = _GRES_ITEM.match(item.strip())
        if match:
            counts[match.group(1)] += int(match.group(2))
    return counts


def _fmt(counts: Counter[str | None]) -> str:
    parts = [f"gpu:{t}:{n}" if t else f"gpu:{n}" for t, n in sorted(counts.items(), key=str)]
    return ",".join(parts) or "no GPU"


def _node_fix(gpus: list[SlurmGpu], node: str) -> str:
    counts: Counter[str | None] = Counter(g.gres_type for g in gpus)
    return f"NodeName={node} Gres={_fmt(counts)}"


def _check_node_gres(
    fields: dict[str, str], gpus: list[SlurmGpu], node: str, subject: str
) -> DoctorFinding:
    """Slurm's ``Gres=`` for the node, type by type, against ds01's GPUs for Slurm."""
    want: Counter[str | None] = Counter(g.gres_type for g in gpus)
    have = gres_counts(fields.get("Gres", ""))
    used = gres_counts(fields.get("GresUsed", ""))
    in_use = sum(used.values())
    if have != want:
        return DoctorFinding(
            "slurm gres",
            subject,
            False,
            f"Slurm has Gres={_fmt(have)} on {node}, ds01 has {_fmt(want)} for Slurm there",
            REGENERATE,
        )
    extra = set(used) - set(have)
    if extra:
        return DoctorFinding(
            "slurm gres",
            subject,
            False,
            f"Slurm counts GPUs of type(s) {', '.join(map(str, extra))} in use on {node} "
            "that its Gres= does not list",
            REGENERATE,
        )
    return DoctorFinding(
        "slurm gres",
        subject,
        True,
        f"Slurm's Gres={_fmt(have)} is ds01's ({in_use} in use by jobs)",
    )


def gres_conf_path(cfg: SlurmConfig) -> Path:
    conf = Path(str(cfg.slurm_conf)) if cfg.slurm_conf else Path("/etc/slurm/slurm.conf")
    return conf.parent / "gres.conf"


def gres_conf_records(text: str, node: str) -> tuple[list[tuple[str, ...]], bool]:
    """The ``gpu`` records gres.conf gives ``node``, each as its device files in order, and
    whether NVML autodetection is on (it would add and order GPUs itself).

    :raises ValueError: a line's host or file ranges cannot be read.
    """
    records: list[tuple[str, ...]] = []
    autodetect = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = {k.lower(): v for k, v in key_values(line)}
        if "autodetect" in fields and fields["autodetect"].lower() != "off":
            autodetect = True
        if fields.get("name") != "gpu":
            continue
        try:
            if "nodename" in fields and node not in expand_nodes(fields["nodename"]):
                continue
            if "multiplefiles" in fields:
                records.append(tuple(expand_nodes(fields["multiplefiles"])))
            elif "file" in fields:
                records.extend((f,) for f in expand_nodes(fields["file"]))
        except ValueError:
            raise ValueError(f"cannot read the ranges of `{line}`") from None
    return records, autodetect


def _check_gres_conf(
    cfg: SlurmConfig, node: str, gpus: list[SlurmGpu], subject: str
) -> DoctorFinding:
    """gres.conf lists ds01's device files in ds01's order: GRES index i is ds01's GPU i."""
    path = gres_conf_path(cfg)
    try:
        text = path.read_text()
    except OSError as exc:
        return DoctorFinding(
            "slurm gres.conf", subject, False, f"cannot read {path}: {exc.strerror}", REGENERATE
        )
    try:
        records, autodetect = gres_conf_records(text, node)
    except ValueError as exc:
        return DoctorFinding("slurm gres.conf", subject, False, f"{path}: {exc}", REGENERATE)
    want = [g.files for g in gpus]
    if autodetect:
        problem = "turns on AutoDetect, so Slurm orders the GPUs itself"
    elif records == want:
        return DoctorFinding(
            "slurm gres.conf",
            subject,
            True,
            f"{path} lists ds01's {len(want)} GPU(s) in ds01's order",
        )
    elif len(records) != len(want):
        problem = f"lists {len(records)} GPU record(s) for {node}, ds01 has {len(want)}"
    else:
        first = next(i for i, (a, b) in enumerate(zip(records, want, strict=True)) if a != b)
        problem = (
            f"has GRES {first} as {','.join(records[first])}, but ds01's GPU {first} is "
            f"`{gres_line(node, gpus[first])}`: jobs would get other GPUs than ds01 records"
        )
    return DoctorFinding("slurm gres.conf", subject, False, f"{path} {problem}", REGENERATE)


def _check_allocations(runtime: Runtime, gpus: list[SlurmGpu], subject: str) -> DoctorFinding:
    """No ds01 allocation outside a Slurm job holds a GPU Slurm schedules."""
    slurm_slots = {g.slot.uuid: g.slot.slot_id for g in gpus}
    outside: list[str] = []
    for alloc in live_allocations(runtime):
        held = [slurm_slots[u] for u in alloc.slot_uuids if u in slurm_slots]
        if not held:
            continue
        try:
            info = runtime.docker.inspect_container(alloc.container)
        except DockerError:
            info = None
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        if JOB_LABEL not in labels:
            name = alloc.container_name or alloc.container[:12]
            outside.append(f"{alloc.user}'s {name} holds {', '.join(held)}")
    if outside:
        return DoctorFinding(
            "slurm gpus outside jobs",
            subject,
            False,
            "ds01 gave GPUs Slurm schedules to containers outside Slurm jobs: "
            + "; ".join(outside),
            "remove those containers (`ds01 container remove NAME --as USER`: the GPUs are "
            "released at once), or take the GPUs out of plugins.slurm.gpus",
        )
    return DoctorFinding(
        "slurm gpus outside jobs",
        subject,
        True,
        f"no GPU Slurm schedules is held outside a Slurm job ({len(gpus)} checked)",
    )
