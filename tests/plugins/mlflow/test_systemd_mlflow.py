"""ds01-mlflow.service under a real systemd (252, PID 1 of a container): it starts the MLflow
server through ``ds01-mlflow-server``, and when the server dies systemd starts it again, with
nothing lost.

ds01 and ds01-mlflow are installed in the container as docs/install.md and
docs/mlflow-admin.md say (venv /opt/ds01, the unit); MLflow is this host's test venv
(scripts/ci/setup-mlflow.sh) and its Python, bind-mounted read-only at the same paths. The
server listens on the container's loopback. Costs (2 shared cores): the image once (cached by
tag), then ~40-60 s (MLflow starts twice).
"""

from __future__ import annotations

import secrets
import shlex
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.systemd_container import (
    ROOT,
    SystemdContainer,
    build_wheel,
    dependency_closure,
    stage_site_packages,
)
from tests.plugins.mlflow.mlflow_env import VENV

pytestmark = pytest.mark.integration

PASSWORD = "systemd-" + secrets.token_hex(8)
CONFIG = """\
gpu:
  backend: simulated
plugins:
  mlflow:
    url: http://127.0.0.1:5000
    mlflow_command: {venv}/bin/mlflow
    workers: 1
"""
# run by the container's python3: METHOD PATH [JSON] as the admin; prints the status and body
CLIENT = textwrap.dedent(
    """
    import base64, json, sys, urllib.request, urllib.error
    method, path = sys.argv[1], sys.argv[2]
    body = sys.argv[3].encode() if len(sys.argv) > 3 else None
    request = urllib.request.Request("http://127.0.0.1:5000" + path, data=body, method=method)
    token = base64.b64encode(("ds01-admin:" + open("/etc/ds01/mlflow-admin-password").read().strip()).encode())
    request.add_header("Authorization", "Basic " + token.decode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            print(answer.status, answer.read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode()[:200])
    except OSError as exc:
        print(0, repr(exc))
    """
)


def call(host: SystemdContainer, method: str, path: str, body: str = "") -> str:
    args = " ".join(shlex.quote(a) for a in (method, path, *([body] if body else [])))
    return host.sh(f"python3 /usr/local/bin/mlflow-test-client.py {args}").strip()


def wait_up(host: SystemdContainer, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not call(host, "GET", "/health").startswith("200"):
        assert time.monotonic() < deadline, host.sh(
            "journalctl -u ds01-mlflow --no-pager | tail -30", check=False
        )
        time.sleep(1)


def main_pid(host: SystemdContainer) -> str:
    return host.sh("systemctl show -p MainPID --value ds01-mlflow.service").strip()


def test_the_unit_runs_the_server_and_restarts_it(tmp_path: Path) -> None:
    if not (VENV / "pyvenv.cfg").exists():
        pytest.fail(f"no MLflow in {VENV}: run scripts/ci/setup-mlflow.sh")
    python_home = Path((VENV / "pyvenv.cfg").read_text().split("home = ", 1)[1].split()[0]).parent
    staged = tmp_path / "staged"
    wheel = build_wheel(staged / "wheel")
    plugin = build_wheel(staged / "plugin", ROOT / "plugins" / "mlflow", "ds01_mlflow-*.whl")
    needed = {d.metadata["Name"]: d for d in dependency_closure("ds01")}
    for dist in dependency_closure("ds01-mlflow"):
        needed.setdefault(dist.metadata["Name"], dist)
    stage_site_packages(needed.values(), staged / "site-packages")
    (staged / "ds01.yaml").write_text(CONFIG.format(venv=VENV))
    (staged / "client.py").write_text(CLIENT)
    (staged / "password").write_text(PASSWORD + "\n")

    host = SystemdContainer(f"ds01-mlflow-systemd-{secrets.token_hex(3)}")
    host.start("-v", f"{VENV}:{VENV}:ro", "-v", f"{python_home}:{python_home}:ro")
    try:
        host.install_ds01(wheel, staged / "site-packages")
        host.install_wheel(plugin)
        host.sh("install -d -m 0755 /etc/ds01 /etc/systemd/system")
        host.copy_in(staged / "ds01.yaml", "/etc/ds01/ds01.yaml")
        host.copy_in(staged / "password", "/etc/ds01/mlflow-admin-password")
        host.sh("chown root: /etc/ds01/mlflow-admin-password")
        host.sh("chmod 0600 /etc/ds01/mlflow-admin-password")
        host.copy_in(staged / "client.py", "/usr/local/bin/mlflow-test-client.py")
        host.copy_in(ROOT / "packaging" / "systemd" / "ds01-mlflow.service", "/etc/systemd/system/")
        host.sh("systemctl daemon-reload && systemctl enable --now ds01-mlflow.service")
        wait_up(host)
        made = call(host, "POST", "/api/2.0/mlflow/experiments/create", '{"name": "kept"}')
        assert made.startswith("200"), made
        first = main_pid(host)
        command = host.sh(f"tr '\\0' ' ' < /proc/{first}/cmdline")
        assert "server --app-name basic-auth" in command  # exec'd: MLflow's own process
        assert "ds01-mlflow-server" not in command
        assert host.sh("stat -c '%a %U' /var/lib/ds01/mlflow").strip() == "700 root"

        host.sh(f"kill -9 {first}")  # the server dies: Restart=always starts it again
        deadline = time.monotonic() + 60
        while main_pid(host) in ("0", first):
            assert time.monotonic() < deadline, host.sh("systemctl status ds01-mlflow", check=False)
            time.sleep(0.5)
        wait_up(host)
        restarts = host.sh("systemctl show -p NRestarts --value ds01-mlflow.service").strip()
        assert restarts == "1"
        kept = call(host, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=kept")
        assert kept.startswith("200") and '"name": "kept"' in kept, kept
        assert PASSWORD not in host.sh("journalctl -u ds01-mlflow --no-pager", check=False)
    finally:
        host.stop()
