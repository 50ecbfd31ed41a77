"""The ``plugins.slurm:`` configuration section: where Slurm is, which GPUs it schedules, the
job policy (GPU idleness) and the carbon-aware start.

Every field has a default, so a missing section is a working one on a host where Slurm's own
default configuration (``/etc/slurm/slurm.conf``) is the cluster's.
"""

from __future__ import annotations

import re

import attrs

from ds01_core.api import AbsPath, Duration, TimeLimit

Problem = tuple[tuple[str | int, ...], str]
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@attrs.define
class JobIdleConfig:
    """``plugins.slurm.idle``: what happens to a running job whose GPUs do nothing.

    As HPC centres do (Jobstats' Job Defense Shield): a GPU job whose GPUs all stay at or below
    ``gpu_threshold`` percent for ``cancel_after`` is cancelled — never before its owner was
    warned, ``warn_before`` ahead. ``action: warn`` only warns; ``none`` leaves jobs alone.
    """

    action: str = "cancel"
    cancel_after: TimeLimit = TimeLimit(2 * 3600)
    warn_before: Duration = Duration(30 * 60)
    gpu_threshold: float = 0.0

    def config_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        if self.action not in ("cancel", "warn", "none"):
            problems.append((("action",), f"must be cancel, warn or none, not {self.action!r}"))
        after = self.cancel_after.seconds()
        if after is not None and float(self.warn_before) >= after:
            problems.append(
                (("warn_before",), "must be shorter than cancel_after (a warning comes first)")
            )
        if not 0.0 <= self.gpu_threshold < 100.0:
            problems.append((("gpu_threshold",), "must be a percentage from 0 up to 100"))
        return problems


@attrs.define
class GreenConfig:
    """``plugins.slurm.green``: ``ds01 job submit --green`` (carbon-aware start)."""

    #: the power one GPU of a job is assumed to draw, for the estimated emissions
    watts_per_gpu: float = 300.0
    #: the power of a job without a GPU (its CPUs)
    watts_cpu_only: float = 100.0


@attrs.define
class SlurmConfig:
    """``plugins.slurm``: the Slurm cluster this server is a node of."""

    #: Slurm's configuration file (``SLURM_CONF`` for every Slurm command ds01 runs; None:
    #: Slurm's own default)
    slurm_conf: AbsPath | None = None
    #: where ``sbatch``, ``squeue``, ``scontrol``, ``scancel``, ``salloc``, ``srun`` are (None:
    #: the ``PATH``)
    bin_dir: AbsPath | None = None
    #: this server's node name in Slurm (None: the short host name)
    node_name: str | None = None
    #: the GPUs (by index) Slurm schedules on this server, e.g. ``[0, 1, 2, 3]``; ds01's own
    #: allocator keeps off them (``docker run --gpus`` never takes a GPU Slurm will give a
    #: job). Empty (the default): none, this server only submits (a login node)
    gpus: list[int] = attrs.Factory(list)
    #: where the GPU device nodes are, for the generated gres.conf
    device_dir: AbsPath = AbsPath("/dev")
    #: the driver's MIG device minors (MIG instances as GRES need their cap devices)
    mig_minors_file: AbsPath = AbsPath("/proc/driver/nvidia-caps/mig-minors")
    #: name GPU types in GRES (``gpu:a100:1``, MIG profiles always are); false: plain ``gpu:N``
    gres_types: bool = True
    #: the partition jobs go to (None: Slurm's default)
    partition: str | None = None
    #: a job's output log (``{home}``, ``{user}`` replaced; ``%j`` is the job id, Slurm's own)
    log_dir: str = "{home}/.ds01/jobs"
    #: how long a job's container has between SIGTERM and SIGKILL when the job is cancelled
    #: or ends (keep it below Slurm's KillWait, so that the job's step sees it through)
    stop_grace: Duration = Duration(10)
    #: how long a job command waits for Slurm's commands
    command_timeout: Duration = Duration(30)
    idle: JobIdleConfig = attrs.Factory(JobIdleConfig)
    green: GreenConfig = attrs.Factory(GreenConfig)
    #: tell users when their jobs start, end, fail or are cancelled (through ds01-notify)
    notify: bool = True
    #: the ``ds01`` program a job submitted over the REST API runs on its node (None: ``ds01``
    #: on the PATH); ``ds01 job submit`` uses the very program it was started as
    ds01_command: str | None = None

    def config_problems(self) -> list[Problem]:
        problems: list[Problem] = [(("idle", *p), m) for p, m in self.idle.config_problems()]
        if any(i < 0 for i in self.gpus) or len(set(self.gpus)) != len(self.gpus):
            problems.append((("gpus",), "GPU indexes are 0 or more, each listed once"))
        if self.node_name is not None and not _NODE.match(self.node_name):
            problems.append((("node_name",), f"{self.node_name!r} is not a Slurm node name"))
        if "{user}" not in self.log_dir and "{home}" not in self.log_dir:
            problems.append(
                (("log_dir",), "must contain {home} or {user}: each user's logs are their own")
            )
        return problems
