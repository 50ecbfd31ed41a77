"""What MLflow wiring costs a container create.

Set-up: a real MLflow server with its basic-auth app (``ds01-mlflow-server`` from the test
venv, as tests/plugins/mlflow/mlflow_env.py starts it), a real user, the real engine.

- ``containers.create`` + ``containers.remove`` in-process as the user, CPU-only, wired
  (the default: a new experiment for each container name; and with a ``--project`` whose
  experiment exists) against opted out (``DS01_MLFLOW=off``) in the same run, rounds
  alternating so the machine's noise falls on all; medians and the ratios. The first wired
  create (the account and the experiment made) is reported on its own.

    python -m benchmarks mlflow
    DS01_BENCH_SCALE=0.3 python -m benchmarks mlflow   # fewer samples, same shape
"""

from __future__ import annotations

import os
import pwd
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

USER = "ds01bench"
IMAGE = "ds01-test:busybox"


def ensure_user() -> tuple[pwd.struct_passwd, bool]:
    try:
        return pwd.getpwnam(USER), False
    except KeyError:
        subprocess.run(["useradd", "--create-home", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER), True


def main() -> None:
    from ds01_core.framework.runtime import load_runtime
    from ds01_core.services.caller import Caller
    from ds01_core.services.catalogue import call as call_op
    from ds01_core.services.operations import ServiceContext
    from tests.plugins.mlflow.mlflow_env import MlflowServer

    scale = float(os.environ.get("DS01_BENCH_SCALE", "1"))
    rounds = max(5, int(20 * scale))
    user, created_user = ensure_user()
    base = Path(tempfile.mkdtemp(prefix="ds01-bench-mlflow-"))
    os.chmod(base, 0o755)
    server = MlflowServer(base)
    server.start()
    try:
        runtime = load_runtime(str(server.config_path))
        ctx = ServiceContext(runtime, Caller(user.pw_name, user.pw_uid, False))
        tag = f"bm{os.getpid()}"

        def create_remove(name: str, env: list[str], project: str | None = None) -> float:
            start = time.perf_counter()
            call_op(
                ctx,
                "containers.create",
                name=name,
                image=IMAGE,
                cpu_only=True,
                env=env,
                project=project,
            )
            took = (time.perf_counter() - start) * 1000
            call_op(ctx, "containers.remove", name=name, force=True)
            return took

        first = create_remove(f"{tag}-first", [])
        wired: list[float] = []
        project: list[float] = []
        unwired: list[float] = []
        for i in range(rounds):
            wired.append(create_remove(f"{tag}-w{i}", []))
            project.append(create_remove(f"{tag}-p{i}", [], project=f"{tag}-project"))
            unwired.append(create_remove(f"{tag}-u{i}", ["DS01_MLFLOW=off"]))
        w, p, u = (statistics.median(x) for x in (wired, project, unwired))
        print(f"first wired create (account + experiment made) {first:8.1f} ms")
        print(
            f"create, wired, a new experiment      p50 {w:8.1f} ms   {w / u:5.2f}x (+{w - u:.1f} ms)"
        )
        print(
            f"create, wired, its project's (exists) p50 {p:8.1f} ms   {p / u:5.2f}x (+{p - u:.1f} ms)"
        )
        print(f"create, DS01_MLFLOW=off (baseline)    p50 {u:8.1f} ms")
    finally:
        server.stop()
        if created_user:
            subprocess.run(["userdel", "--remove", USER], check=False, capture_output=True)


if __name__ == "__main__":
    main()
