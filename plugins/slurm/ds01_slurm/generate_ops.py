"""The admin operation ``slurm.generate_config``: the generated Slurm configuration, as data.

It runs where the GPUs are (the root service) and returns text; the CLI writes the files as
the calling admin, so nothing in /etc is touched by the service.
"""

from __future__ import annotations

from typing import Any

from ds01_core.api import Conflict, Operation, Unavailable
from ds01_slurm.generate import generate
from ds01_slurm.gres import GresMismatch
from ds01_slurm.settings import slurm_config


def generate_config(ctx: Any) -> dict[str, Any]:
    """gres.conf, the node line, the slurm.conf fragment and the sacctmgr script (admins)."""
    cfg = slurm_config(ctx.runtime)
    try:
        generated = generate(ctx.runtime, cfg)
    except GresMismatch as exc:
        raise Conflict(f"{exc} (check with `nvidia-smi mig -lgi`)") from None
    except OSError as exc:
        raise Unavailable(
            f"cannot read the MIG device minors ({cfg.mig_minors_file}: "
            f"{exc.strerror or exc}): is the NVIDIA driver loaded? "
            "(set plugins.slurm.mig_minors_file if it is elsewhere)"
        ) from None
    if not cfg.gpus:
        raise Conflict(
            "plugins.slurm.gpus names no GPU: list the GPUs Slurm schedules on this server "
            "(e.g. gpus: [0, 1, 2, 3]) first"
        )
    if not generated.records:
        raise Conflict(
            f"there is no GPU for Slurm on this server: ds01 sees none of GPUs {cfg.gpus} "
            "(plugins.slurm.gpus); check `ds01 gpu status`"
        )
    return generated.to_json()


OPERATIONS = [
    Operation(
        "slurm.generate_config",
        "GET",
        "/v1/slurm/config",
        generate_config,
        admin=True,
        summary="The Slurm configuration for this server's GPUs and ds01's groups (admins).",
    )
]
