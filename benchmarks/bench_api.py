"""The API socket's cost: a user's command over the socket against root's, in-process.

Set-up: a real user with 20 containers (created through ds01, so they are theirs), ``ds01-api``
on a socket of its own, and a ``ds01`` every user can run (Debian's python3 with this
environment's packages, as tests/helpers/user_cli.py builds it). Both sides start the same
program through ``runuser`` (root as root, the user as the user), so the only difference is
where the operation runs: in root's process, or in ``ds01-api`` behind the socket. Rounds
alternate so that the machine's noise falls on both alike; figures are medians.

Reported: ``ds01 quota`` and ``ds01 container list`` end to end (socket / in-process ratio and
milliseconds), the same operations at the API level (one keep-alive client as the user against
``call()`` in root's process), and the CLI's own start-up (``ds01 --version``, ``--help``).

    python -m benchmarks api
    DS01_BENCH_SCALE=0.3 python -m benchmarks api   # fewer samples, same shape
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

USER = "ds01bench"
CONTAINERS = 20
IMAGE = "ds01-test:busybox"


def ensure_user() -> tuple[pwd.struct_passwd, bool]:
    try:
        return pwd.getpwnam(USER), False
    except KeyError:
        subprocess.run(["useradd", "--create-home", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER), True


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def run(cli: Path, who: str, args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [
            "runuser",
            "-u",
            who,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            str(cli / "bin" / "ds01"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ds01 {' '.join(args)} as {who}: {done.stderr}")
    return done.stdout


def api_client_times(
    sock: str, user: pwd.struct_passwd, paths: list[str], rounds: int
) -> dict[str, list[float]]:
    """Per-path request times (ms) from one keep-alive connection, in a child with the user's
    uid (the caller comes from SO_PEERCRED)."""
    from ds01_core.transports.api_socket.client import (
        _UnixConnection,  # before dropping to the user
    )

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            conn = _UnixConnection(sock, 60)
            times: dict[str, list[float]] = {p: [] for p in paths}
            for _ in range(rounds):
                for path in paths:
                    start = time.perf_counter()
                    conn.request("GET", path)
                    answer = conn.getresponse()
                    answer.read()
                    times[path].append((time.perf_counter() - start) * 1000)
            os.write(write_end, json.dumps(times).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(data)


def in_process_times(config: Path, rounds: int) -> dict[str, list[float]]:
    from ds01_core.framework.runtime import load_runtime
    from ds01_core.services.caller import Caller
    from ds01_core.services.catalogue import call
    from ds01_core.services.operations import ServiceContext

    runtime = load_runtime(str(config))
    ctx = ServiceContext(runtime, Caller("root", 0, True))
    times: dict[str, list[float]] = {"quota": [], "containers.list": []}
    for _ in range(rounds):
        times["quota"].append(timed(lambda: call(ctx, "quota", user=USER)))
        times["containers.list"].append(timed(lambda: call(ctx, "containers.list", user=USER)))
    runtime.close()
    return times


def report(label: str, via_socket: list[float], in_process: list[float]) -> None:
    s, p = statistics.median(via_socket), statistics.median(in_process)
    print(f"{label:<28} socket {s:8.1f} ms   in-process {p:8.1f} ms   ratio {s / p:5.2f}x")


def main() -> None:
    from tests.helpers.config import write_config
    from tests.helpers.servers import running_api
    from tests.helpers.user_cli import build_user_cli

    scale = float(os.environ.get("DS01_BENCH_SCALE", "1"))
    rounds = max(3, int(15 * scale))
    user, created_user = ensure_user()
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-api-"))
    os.chmod(workdir, 0o755)
    config = write_config(
        workdir, {"limits": {"defaults": {"max_containers_per_user": CONTAINERS + 5}}}
    )
    cli = build_user_cli()
    names = [f"bench-api-{os.getpid()}-{i}" for i in range(CONTAINERS)]
    try:
        with running_api(config) as sock:
            user_env = {"DS01_API_SOCKET": sock, "HOME": user.pw_dir, "COLUMNS": "200"}
            root_env = {"DS01_CONFIG": str(config), "HOME": "/root", "COLUMNS": "200"}
            for name in names:
                run(
                    cli,
                    USER,
                    ["container", "create", name, "--image", IMAGE, "--cpu-only"],
                    user_env,
                )
            cases = {
                "ds01 quota": (["quota", "--json"], ["quota", "--user", USER, "--json"]),
                "ds01 container list": (
                    ["container", "list", "-a", "--json"],
                    ["container", "list", "-a", "--as", USER, "--json"],
                ),
            }
            results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
            for _ in range(rounds):
                for label, (user_args, root_args) in cases.items():
                    results[label][0].append(timed(run, cli, USER, user_args, user_env))
                    results[label][1].append(timed(run, cli, "root", root_args, root_env))
            listed = json.loads(run(cli, USER, ["container", "list", "-a", "--json"], user_env))
            assert len(listed) >= CONTAINERS, "the user's containers are not all listed"
            print(f"end to end, {rounds} rounds, {CONTAINERS} containers of {USER}:")
            for label, (socket_times, root_times) in results.items():
                report(label, socket_times, root_times)

            api_rounds = rounds * 4
            socket_ops = api_client_times(
                sock, user, ["/v1/quota", "/v1/containers?all=true"], api_rounds
            )
            local_ops = in_process_times(config, api_rounds)
            print(f"\noperation only, {api_rounds} calls each (keep-alive client vs call()):")
            report("quota", socket_ops["/v1/quota"], local_ops["quota"])
            report(
                "containers.list",
                socket_ops["/v1/containers?all=true"],
                local_ops["containers.list"],
            )

            start_up = {
                "ds01 --version": [
                    timed(lambda: run(cli, USER, ["--version"], user_env)) for _ in range(rounds)
                ],
                "ds01 --help": [
                    timed(lambda: run(cli, USER, ["--help"], user_env)) for _ in range(rounds)
                ],
                "runuser true (launcher)": [
                    timed(lambda: subprocess.run(["runuser", "-u", USER, "--", "true"], check=True))
                    for _ in range(rounds)
                ],
            }
            print("\nCLI start-up (no operation):")
            for label, values in start_up.items():
                print(f"{label:<28} {statistics.median(values):8.1f} ms")
    finally:
        from ds01_core.domain.docker_engine import DockerAdapter

        docker = DockerAdapter.from_env()
        for summary in docker.list_containers(all=True):
            if any(n.lstrip("/") in names for n in summary.get("Names") or ()):
                docker.remove(summary["Id"], force=True)
        docker.close()
        shutil.rmtree(cli, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
        if created_user:
            subprocess.run(["userdel", "--remove", USER], capture_output=True)
