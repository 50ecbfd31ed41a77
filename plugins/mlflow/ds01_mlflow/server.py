"""``ds01-mlflow-server``: MLflow's tracking server with its basic-auth app, as ``plugins.mlflow``
configures it.

It writes what ``mlflow server --app-name basic-auth`` reads besides its flags — the auth
app's ini file (admin account, ``default_permission = NO_PERMISSIONS`` so experiments are their
creator's alone, the users database) and the Flask secret key (made once, kept) — into
``data_dir`` (root's, 0700), then replaces itself with ``mlflow server``: systemd sees MLflow's
own process, and a restart re-reads the configuration. Nothing of MLflow is lost on a restart:
the tracking store, the users and their permissions are databases, the artifacts files.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from ds01_core.api import load_runtime
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.provision import ProvisionError, admin_password, mlflow_config

AUTH_INI = "basic_auth.ini"
SECRET_KEY = "flask-secret-key"


def listen_address(config: MlflowConfig) -> tuple[str, int]:
    """The host and port of ``url`` (the server listens where ds01 and containers reach it)."""
    parts = urlsplit(config.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


def backend_store_uri(config: MlflowConfig) -> str:
    return config.backend_store_uri or f"sqlite:///{Path(config.data_dir) / 'mlflow.db'}"


def artifacts_destination(config: MlflowConfig) -> str:
    return config.artifacts_destination or str(Path(config.data_dir) / "artifacts")


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def auth_ini(config: MlflowConfig, password: str) -> str:
    data = Path(config.data_dir)
    return (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{data / 'basic_auth.db'}\n"
        f"admin_username = {config.admin_username}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {int(float(config.auth_cache))}\n"
    )


def prepare(config: MlflowConfig) -> tuple[list[str], dict[str, str]]:
    """Write the auth app's files; the ``mlflow server`` command line and its environment."""
    data = Path(config.data_dir)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    (data / "artifacts").mkdir(mode=0o700, exist_ok=True)
    _private_file(data / AUTH_INI, auth_ini(config, admin_password(config)))
    key_file = data / SECRET_KEY
    if not key_file.exists():
        _private_file(key_file, secrets.token_hex(32))
    host, port = listen_address(config)
    command = [
        str(config.mlflow_command),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(config.workers),
        "--backend-store-uri",
        backend_store_uri(config),
        "--artifacts-destination",
        artifacts_destination(config),
    ]
    environment = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(data / AUTH_INI),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key_file.read_text(encoding="utf-8").strip(),
        # server-side GenAI jobs: eight more processes nobody here uses
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return command, environment


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
@click.option("--print", "print_only", is_flag=True, help="Print the command; start nothing.")
def main(config_path: str | None, print_only: bool) -> None:
    """Run MLflow's tracking server (basic-auth app) as plugins.mlflow configures it."""
    try:
        config = mlflow_config(load_runtime(config_path))
        if not os.access(config.mlflow_command, os.X_OK):
            raise ProvisionError(
                f"{config.mlflow_command} is not an executable mlflow (plugins.mlflow."
                "mlflow_command); install it: python3 -m venv /opt/mlflow && "
                "/opt/mlflow/bin/pip install 'mlflow[auth]'"
            )
        command, environment = prepare(config)
    except Exception as exc:  # one line for the journal: what is wrong, then exit
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        click.echo(f"ds01-mlflow-server: cannot start: {reason}", err=True)
        sys.exit(1)
    if print_only:
        click.echo(" ".join(command))
        return
    os.execve(command[0], command, environment)


if __name__ == "__main__":
    main()
