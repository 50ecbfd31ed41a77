"""ds01-slurm: batch jobs on Slurm, in the user's image, on the GPUs Slurm gave the job.

``ds01 job submit|list|status|logs|cancel|interactive`` for users; ``ds01 admin slurm config``
(gres.conf and a slurm.conf fragment from ds01's GPU inventory) for admins. A job's container
is created on its node through ds01's admission with exactly the GPUs Slurm's own record gives
the job, so quotas, ``ds01 gpu status``, idle detection, metrics and accounting see jobs like
any container. Public API beyond the hooks:

- :class:`SlurmConfig`: the ``plugins.slurm`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import hookimpl
from ds01_slurm.config import SlurmConfig
from ds01_slurm.settings import JOB_LABEL

if TYPE_CHECKING:
    import click

    from ds01_core.api import (
        CycleStep,
        DoctorFinding,
        GpuSlot,
        Operation,
        Policy,
        Runtime,
        Workload,
    )

__version__ = "0.1.0"

__all__ = ["SlurmConfig"]

#: who keeps the GPUs Slurm schedules (shown to a user refused for want of a free GPU)
KEEPER = "Slurm batch jobs (ds01 job submit / ds01 job interactive)"


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.slurm:``, validated by the core with every problem named by its path."""
    return {"slurm": SlurmConfig}


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``slurm.*``: submit checks, listing, status, cancel, a job container's start and end,
    submit and logs as the caller (the REST API), and (admins) the generated configuration."""
    from ds01_slurm.generate_ops import OPERATIONS as GENERATE
    from ds01_slurm.job_ops import OPERATIONS
    from ds01_slurm.rest_jobs import OPERATIONS as REST

    return [*OPERATIONS, *REST, *GENERATE]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 job`` and ``ds01 admin slurm``."""
    from ds01_slurm.admin_cli import add_admin_commands
    from ds01_slurm.job_cli import job
    from ds01_slurm.job_node_cli import interactive, run

    job.add_command(interactive)
    job.add_command(run)
    cli.add_command(job)
    add_admin_commands(cli)


@hookimpl
def cycle_steps() -> Sequence[CycleStep]:
    """``slurm-jobs``: job containers follow their jobs; idle GPU jobs warned, then cancelled."""
    from ds01_slurm.job_watch import STEP

    return [STEP]


@hookimpl
def reserved_gpu_slots(runtime: Runtime, slots: Sequence[GpuSlot]) -> dict[str, str]:
    """The GPUs Slurm schedules here (``plugins.slurm.gpus``) and their MIG instances: ds01's
    own allocator keeps off them, so Slurm never gives a job a GPU a container holds."""
    from ds01_slurm.settings import slurm_config

    lent = set(slurm_config(runtime).gpus)
    return {s.uuid: KEEPER for s in slots if s.gpu_index in lent}


@hookimpl(tryfirst=True)
def on_idle(workload: Workload, policy: Policy) -> str | None:
    """A job's container follows the job policy (``plugins.slurm.idle``: its GPUs, warned then
    cancelled, in the ``slurm-jobs`` step), not the idle timeout of interactive containers."""
    del policy
    return "none" if JOB_LABEL in workload.labels else None


@hookimpl
def doctor_checks(runtime: Runtime) -> Sequence[DoctorFinding]:
    """Slurm's view of this node's GPUs against ds01's."""
    from ds01_slurm.doctor import doctor_checks as checks

    return list(checks(runtime))
