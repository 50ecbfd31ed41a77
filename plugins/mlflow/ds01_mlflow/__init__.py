"""ds01-mlflow: an MLflow tracking server run by ds01, every container wired to it, each user's
experiments their own.

Public API beyond the hooks:

- :class:`MlflowConfig`: the ``plugins.mlflow`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import click

from ds01_core.api import add_create_env_flag, hookimpl
from ds01_mlflow.config import MlflowConfig

if TYPE_CHECKING:
    from ds01_core.api import ContainerSpec, CycleStep, Refusal, Runtime

__version__ = "0.1.0"

__all__ = ["MlflowConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.mlflow:``, validated by the core with every problem named by its path."""
    return {"mlflow": MlflowConfig}


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


def add_create_flags(cli: click.Group) -> None:
    """``ds01 container create --no-mlflow`` (sets ``DS01_MLFLOW=off`` in the container)."""
    add_create_env_flag(
        cli,
        "--no-mlflow",
        "DS01_MLFLOW=off",
        "Do not wire this container to ds01's MLflow server.",
    )


@hookimpl
def add_cli_commands(cli: click.Group) -> None:  # merged by the lead
    add_create_flags(cli)
