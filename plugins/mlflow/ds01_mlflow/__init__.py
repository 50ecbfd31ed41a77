"""ds01-mlflow: an MLflow tracking server run by ds01, every container wired to it, each user's
experiments their own.

Public API beyond the hooks:

- :class:`MlflowConfig`: the ``plugins.mlflow`` section.
"""

from __future__ import annotations

from collections.abc import Mapping

from ds01_core.api import hookimpl
from ds01_mlflow.config import MlflowConfig

__version__ = "0.1.0"

__all__ = ["MlflowConfig"]


@hookimpl
def plugin_config_sections() -> Mapping[str, type]:
    """``plugins.mlflow:``, validated by the core with every problem named by its path."""
    return {"mlflow": MlflowConfig}
