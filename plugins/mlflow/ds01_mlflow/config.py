"""The ``plugins.mlflow:`` configuration section: where the tracking server is, how ds01 runs
it, the admin account ds01 provisions users with, and what containers get.

Every field but the admin password file has a default. The server listens where containers can
reach it: by default the Docker bridge's address (``http://172.17.0.1:5000``), which the host
reaches too; ``container_url`` is for set-ups where containers must use another name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from ds01_core.api import AbsPath, Duration

Problem = tuple[tuple[str | int, ...], str]
#: MLflow's experiment permissions, weakest first
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
_BACKENDS = ("sqlite:////", "postgresql://", "postgresql+psycopg2://", "mysql://")


@attrs.define
class MlflowConfig:
    """``plugins.mlflow``: the tracking server and the wiring of containers to it."""

    #: where ds01 (and users on the host) reach the server; the shipped unit listens on its host
    #: and port (``ds01-mlflow-server``)
    url: str = "http://172.17.0.1:5000"
    #: what containers get as ``MLFLOW_TRACKING_URI`` (None: ``url``)
    container_url: str | None = None
    #: MLflow's own data: the default backend and auth databases and the artifacts live here
    data_dir: AbsPath = AbsPath("/var/lib/ds01/mlflow")
    #: the tracking store (None: SQLite in ``data_dir``); ``postgresql://…`` for large labs
    backend_store_uri: str | None = None
    #: where artifacts go (None: ``data_dir``/artifacts); ``s3://bucket/path`` for S3/MinIO
    artifacts_destination: str | None = None
    #: the ``mlflow`` program of the venv the admin installed ``mlflow[auth]`` into
    mlflow_command: AbsPath = AbsPath("/opt/mlflow/bin/mlflow")
    #: the MLflow admin account ds01 provisions users with
    admin_username: str = "ds01-admin"
    #: a file (mode 0600, root's) holding that account's password (12 characters at least)
    admin_password_file: AbsPath = AbsPath("/etc/ds01/mlflow-admin-password")
    #: gunicorn/uvicorn workers of the server
    workers: int = 2
    #: how long the server caches a good password check (MLflow's auth_cache_ttl_seconds)
    auth_cache: Duration = Duration(60)
    #: per-user credential files (``<credentials_dir>/<user>/credentials``)
    credentials_dir: AbsPath = AbsPath("/var/lib/ds01/mlflow-users")
    #: wire every new container to the server (``--no-mlflow`` / ``DS01_MLFLOW=off`` opt out)
    wire_containers: bool = True
    #: log the container's GPU utilisation and memory to its running MLflow runs each cycle
    gpu_metrics: bool = True
    #: how long ds01 waits for the server on a container create before creating it unwired
    timeout: Duration = Duration(5)

    def tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` for containers."""
        return self.container_url or self.url

    def config_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for name in ("url", "container_url"):
            value = getattr(self, name)
            if value is None:
                continue
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(
                    ((name,), f"must be an http(s) URL such as http://host:5000, not {value!r}")
                )
            elif parts.username or parts.password:
                problems.append(
                    ((name,), "must not carry a user or password (ds01 provisions them)")
                )
        uri = self.backend_store_uri
        if uri is not None and not uri.startswith(_BACKENDS):
            problems.append(
                (("backend_store_uri",), "must be sqlite://// (an absolute path) or postgresql://…")
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", self.admin_username):
            problems.append((("admin_username",), "must be a plain account name"))
        if self.workers < 1:
            problems.append((("workers",), "must be 1 or more"))
        if float(self.timeout) <= 0:
            problems.append((("timeout",), "must be longer than 0s"))
        return problems
