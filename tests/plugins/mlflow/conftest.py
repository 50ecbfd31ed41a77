"""The real MLflow server fixture for every mlflow test module."""

from tests.plugins.mlflow.mlflow_env import mlflow_server

__all__ = ["mlflow_server"]
