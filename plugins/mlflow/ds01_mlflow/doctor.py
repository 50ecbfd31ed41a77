"""``ds01 admin doctor``'s checks of ds01-mlflow: the server, ds01's admin account, the secrets.

- the server answers at ``plugins.mlflow.url``;
- it accepts ds01's admin account (the password file and the server agree);
- its auth app gives nobody anything by default (``default_permission = NO_PERMISSIONS`` in
  ``data_dir``/basic_auth.ini): otherwise every user reads every experiment;
- the admin password file is root's and nobody else's (0600 or stricter);
- ``credentials_dir`` is root's, mode 0711 (users reach their own file, list nothing).

Only where ds01-mlflow is set up — its unit installed or its admin password file there:
elsewhere one finding says it is not set up, which is no problem (tracking is optional).
"""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

from ds01_core.api import DoctorFinding, Runtime
from ds01_mlflow.client import MlflowClient, MlflowError
from ds01_mlflow.config import MlflowConfig
from ds01_mlflow.credentials import DIR_MODE
from ds01_mlflow.provision import ProvisionError, admin_client, mlflow_config
from ds01_mlflow.server import AUTH_INI

UNIT_FILES = tuple(
    Path(d) / "ds01-mlflow.service"
    for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
)
RESTART = "systemctl restart ds01-mlflow"


def set_up_here(config: MlflowConfig) -> str | None:
    """What shows ds01-mlflow is set up here (its unit file, or the admin password file the
    server and the wiring need), or None. Not a running ``mlflow`` process: any user may run
    one of their own."""
    for unit in UNIT_FILES:
        if unit.is_file():
            return str(unit)
    if os.path.lexists(config.admin_password_file):
        return str(config.admin_password_file)
    return None


def check_server(config: MlflowConfig) -> list[DoctorFinding]:
    """The server answers, and accepts ds01's admin account."""
    with MlflowClient(config.url, timeout=float(config.timeout)) as probe:
        if not probe.health():
            return [
                DoctorFinding(
                    "mlflow server",
                    config.url,
                    False,
                    "does not answer /health",
                    f"systemctl status ds01-mlflow; journalctl -u ds01-mlflow -n 50; {RESTART}",
                )
            ]
    found = [DoctorFinding("mlflow server", config.url, True, "answers")]
    try:
        with admin_client(config) as admin:
            admin.search_experiments(max_results=1)
    except ProvisionError as exc:
        found.append(
            DoctorFinding(
                "mlflow admin",
                config.admin_password_file,
                False,
                str(exc),
                "write a password of 12 characters or more there (mode 0600), then " + RESTART,
            )
        )
    except MlflowError as exc:
        found.append(
            DoctorFinding(
                "mlflow admin",
                config.admin_username,
                False,
                f"the server refuses ds01's admin account ({exc})"
                if exc.status == 401
                else str(exc),
                f"{RESTART} (it sets the admin password from {config.admin_password_file})",
            )
        )
    else:
        found.append(
            DoctorFinding("mlflow admin", config.admin_username, True, "the server accepts it")
        )
    return found


def check_default_permission(config: MlflowConfig) -> DoctorFinding:
    path = Path(config.data_dir) / AUTH_INI
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
        value = parser.get("mlflow", "default_permission", fallback="READ (MLflow's default)")
    except (OSError, configparser.Error) as exc:
        return DoctorFinding(
            "mlflow permissions",
            str(path),
            False,
            f"cannot read it: {exc}",
            f"{RESTART} (ds01-mlflow-server writes it)",
        )
    if value.strip().upper() != "NO_PERMISSIONS":
        return DoctorFinding(
            "mlflow permissions",
            str(path),
            False,
            f"default_permission is {value}: every user can see others' experiments",
            f"{RESTART} (ds01-mlflow-server writes NO_PERMISSIONS)",
        )
    return DoctorFinding(
        "mlflow permissions", str(path), True, "NO_PERMISSIONS: experiments are their owner's"
    )


def check_owner_mode(check: str, path: str, *, exact: int | None, private: bool) -> DoctorFinding:
    """``path`` is root's, with mode ``exact`` (or, ``private``, nothing for group/others)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return DoctorFinding(
            check, path, False, f"cannot read it: {exc.strerror}", "see docs/mlflow-admin.md"
        )
    mode = stat.S_IMODE(info.st_mode)
    bad = (exact is not None and mode != exact) or (private and mode & 0o077)
    if info.st_uid != 0 or bad:
        want = f"{exact:04o}" if exact is not None else "0600"
        return DoctorFinding(
            check,
            path,
            False,
            f"mode {mode:04o}, owner uid {info.st_uid}: should be root's, {want}",
            f"chown root: {path} && chmod {want} {path}",
        )
    return DoctorFinding(check, path, True, f"root's, mode {mode:04o}")


def checks_for(config: MlflowConfig) -> list[DoctorFinding]:
    found = check_server(config)
    found.append(check_default_permission(config))
    found.append(
        check_owner_mode("mlflow secrets", config.admin_password_file, exact=None, private=True)
    )
    if Path(config.credentials_dir).exists():
        found.append(
            check_owner_mode(
                "mlflow credentials", config.credentials_dir, exact=DIR_MODE, private=False
            )
        )
    else:
        found.append(
            DoctorFinding(
                "mlflow credentials",
                config.credentials_dir,
                True,
                "not made yet (ds01 makes it with the first account)",
            )
        )
    return found


def doctor_checks(runtime: Runtime) -> list[DoctorFinding]:
    """Every check above, where ds01-mlflow is set up."""
    config = mlflow_config(runtime)
    if set_up_here(config) is None:
        return [
            DoctorFinding(
                "mlflow",
                "ds01-mlflow",
                True,
                f"not set up here (no ds01-mlflow.service, no {config.admin_password_file}): "
                "experiment tracking is optional (docs/mlflow-admin.md says how to set it up)",
            )
        ]
    return checks_for(config)


__all__ = ["checks_for", "doctor_checks"]
