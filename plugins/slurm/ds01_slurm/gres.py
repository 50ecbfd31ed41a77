"""The GPUs Slurm schedules on this server, in Slurm's order: the one mapping both ways.

``ds01 admin slurm config`` writes ``gres.conf`` from :func:`slurm_gpus` (one line per GPU or
MIG instance, in this order) and the node's ``Gres=`` (its types in the same order), so Slurm's
GRES index *i* on this node is ``slurm_gpus()[i]``: that is how a job's ``GRES=gpu:1(IDX:1)``
becomes a ds01 slot and its UUID.

Slurm 22.05 numbers a node's GPUs by the order of the types in its ``Gres=`` line, then by the
order of gres.conf's lines within a type (seen on a real slurmd, whichever order gres.conf's
lines come in). So the records are grouped by type, types in order of first appearance: whole
GPUs in index order, a MIG-enabled GPU's instances in (GPU instance, compute instance) order.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ds01_slurm.config import SlurmConfig

if TYPE_CHECKING:
    from ds01_core.api import GpuSlot, Runtime


class GresMismatch(Exception):
    """Slurm's GRES indexes do not fit this server's GPUs; the message says how to fix it."""


@attrs.frozen
class SlurmGpu:
    """One GRES record: a whole GPU or a MIG instance, its type and its device files."""

    slot: GpuSlot
    gres_type: str | None
    files: tuple[str, ...]


def node_name(cfg: SlurmConfig) -> str:
    """This server's node name in Slurm (``plugins.slurm.node_name``, else the short host name)."""
    return cfg.node_name or socket.gethostname().split(".")[0]


def gpu_type(model: str) -> str:
    """A GPU model as a GRES type: ``NVIDIA A100-SXM4-80GB`` → ``a100-sxm4-80gb``."""
    name = re.sub(r"^nvidia\s+", "", model.strip().lower())
    return re.sub(r"[^a-z0-9.-]+", "_", name).strip("_") or "gpu"


def mig_minors(path: str | Path) -> dict[str, int]:
    """The driver's MIG device minors: ``gpu0/gi1/access 21`` → ``{"gpu0/gi1/access": 21}``."""
    minors: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        name, _, minor = line.strip().rpartition(" ")
        if name and minor.isdigit():
            minors[name] = int(minor)
    return minors


def slurm_gpus(
    runtime: Runtime, cfg: SlurmConfig, minors: dict[str, int] | None = None
) -> list[SlurmGpu]:
    """Every GPU and MIG instance Slurm schedules here, in GRES index order.

    :param minors: MIG cap minors (:func:`mig_minors`); read from ``mig_minors_file`` when a
        MIG instance needs them and they were not given.
    """
    chosen = set(cfg.gpus)
    device_dir = Path(str(cfg.device_dir))
    records: list[SlurmGpu] = []
    for gpu in sorted(runtime.gpu.gpus(), key=lambda g: g.index):
        if gpu.index not in chosen:
            continue
        minor = gpu.index if gpu.minor_number is None else gpu.minor_number
        whole = str(device_dir / f"nvidia{minor}")
        if not gpu.mig_enabled:
            slot = next(s for s in gpu.slots if s.kind == "gpu")
            kind = gpu_type(gpu.model) if cfg.gres_types else None
            records.append(SlurmGpu(slot, kind, (whole,)))
            continue
        migs = sorted(
            (s for s in gpu.slots if s.kind == "mig"),
            key=lambda s: (s.gpu_instance_id or 0, s.compute_instance_id or 0),
        )
        if migs and minors is None:
            minors = mig_minors(str(cfg.mig_minors_file))
        for slot in migs:
            gi, ci = slot.gpu_instance_id, slot.compute_instance_id
            caps = [f"gpu{minor}/gi{gi}/access", f"gpu{minor}/gi{gi}/ci{ci}/access"]
            missing = [c for c in caps if c not in (minors or {})]
            if missing:
                raise GresMismatch(
                    f"the driver lists no MIG device minor for {', '.join(missing)} in "
                    f"{cfg.mig_minors_file}: is the MIG layout current?"
                )
            files = (
                whole,
                *(str(device_dir / "nvidia-caps" / f"nvidia-cap{(minors or {})[c]}") for c in caps),
            )
            records.append(SlurmGpu(slot, slot.profile or "mig", files))
    types = list(dict.fromkeys(r.gres_type for r in records))
    return sorted(records, key=lambda r: types.index(r.gres_type))  # stable within a type


def slots_for_indexes(
    records: Sequence[SlurmGpu], indexes: Sequence[int], node: str
) -> list[GpuSlot]:
    """The ds01 slots for a job's GRES indexes on ``node`` (this server)."""
    wrong = [i for i in indexes if not 0 <= i < len(records)]
    if wrong:
        raise GresMismatch(
            f"Slurm gave GPU index(es) {', '.join(map(str, wrong))} on {node}, but ds01 knows "
            f"{len(records)} GPU(s) Slurm schedules here: regenerate gres.conf with "
            "`ds01 admin slurm config` and restart slurmd"
        )
    return [records[i].slot for i in indexes]
