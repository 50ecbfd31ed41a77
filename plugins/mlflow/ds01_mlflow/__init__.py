"""ds01-mlflow: an MLflow tracking server run by ds01, every container wired to it, each user's
experiments their own.

Public API beyond the hooks:

- :class:`MlflowConfig`: the ``plugins.mlflow`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ds01_core.api import add_create_env_flag, hookimpl
from ds01_mlflow.config import MlflowConfig

if TYPE_CHECKING:
    import click

    from ds01_core.api import ContainerSpec, CycleStep, DoctorFinding, Operation, Refusal, Runtime

__version__ = "0.1.0"

__all__ = ["MlflowConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.mlflow:``, validated by the core with every problem named by its path."""
    return {"mlflow": MlflowConfig}


@hookimpl
def service_operations() -> Sequence[Operation]:
    """``mlflow.status``, ``mlflow.share``, ``mlflow.unshare`` (users) and
    ``admin.mlflow.sync`` (admins)."""
    from ds01_mlflow.ops import OPERATIONS
    from ds01_mlflow.sync import OPERATIONS as SYNC

    return [*OPERATIONS, *SYNC]


@hookimpl
def add_cli_commands(cli: click.Group) -> None:
    """``ds01 mlflow status|share|unshare``, ``ds01 admin mlflow sync`` and
    ``ds01 container create --no-mlflow``."""
    from ds01_mlflow.cli import add_commands

    add_commands(cli)
    add_create_flags(cli)


def add_create_flags(cli: click.Group) -> None:
    """``ds01 container create --no-mlflow`` (sets ``DS01_MLFLOW=off`` in the container)."""
    add_create_env_flag(
        cli,
        "--no-mlflow",
        "DS01_MLFLOW=off",
        "Do not wire this container to ds01's MLflow server.",
    )


@hookimpl
def doctor_checks(runtime: Runtime) -> Sequence[DoctorFinding]:
    """The server answers, ds01's admin account is accepted, new experiments are their
    creator's alone, the secrets' files are root's — where ds01-mlflow is set up."""
    from ds01_mlflow.doctor import doctor_checks as checks

    return checks(runtime)


@hookimpl
def prepare_container(runtime: Runtime, spec: ContainerSpec) -> Refusal | None:
    """Wire every new container to the tracking server (never refuses; see ``wiring``)."""
    from ds01_mlflow.wiring import prepare

    return prepare(runtime, spec)


@hookimpl
def cycle_steps() -> Sequence[CycleStep]:
    """``mlflow-gpu-metrics``: tags and GPU metrics on the running runs of wired containers."""
    from ds01_mlflow.run_metrics import STEP

    return [STEP]
