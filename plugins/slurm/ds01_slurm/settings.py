"""The plugin's section of the running configuration, and the labels of a job's container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds01_slurm.config import SlurmConfig

if TYPE_CHECKING:
    from ds01_core.api import Runtime

#: the Slurm job a container runs (only this plugin's service writes it)
JOB_LABEL = "ds01.slurm.job"
#: the Slurm node it runs on
NODE_LABEL = "ds01.slurm.node"
#: ``interactive`` (``ds01 job interactive``) or ``batch``
KIND_LABEL = "ds01.slurm.kind"
#: the owner admission writes on every container it admits (clients cannot set ``ds01.*``)
OWNER_LABEL = "ds01.user"
#: where the job's output goes (shown by ``ds01 job status``)
LOG_LABEL = "ds01.slurm.log"


def slurm_config(runtime: Runtime) -> SlurmConfig:
    """``plugins.slurm``, or its defaults when the section is missing."""
    section = runtime.plugin_config("slurm")
    return section if isinstance(section, SlurmConfig) else SlurmConfig()


def container_name(job_id: str) -> str:
    return f"slurm-job-{job_id}"
