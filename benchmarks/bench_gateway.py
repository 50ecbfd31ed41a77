"""The gateway's cost: the same client calls through the gateway and straight to the engine.

Set-up: a real user owning 200 containers (created through the gateway, so they carry ds01's
labels) and one exited container whose log holds 100 MB. The client is the same small
keep-alive HTTP client in both cases; for the direct socket it runs as root (only root may open
the engine's socket), for the gateway as that user, in a child process that really has the
user's uid (identity comes from SO_PEERCRED). Rounds alternate direct/gateway so that the
machine's noise falls on both alike; figures are medians.

Targets (issue #7): latency at most 1.2x the direct socket (list, inspect, create+start+remove),
throughput at least 80% of it (logs).

    python -m benchmarks gateway
    DS01_BENCH_SCALE=0.2 python -m benchmarks gateway   # fewer samples, same shape
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ds01_core.transports.gateway.ownership import UnixHTTPConnection

USER = "ds01bench"
CONTAINERS = 200
LOG_BYTES = 100 * 1024 * 1024
IMAGE = "ds01-test:busybox"
V = "/v1.41"


class Client:
    """One keep-alive connection, like a docker CLI invocation or an SDK client."""

    def __init__(self, path: str):
        self.path = path
        self.conn = UnixHTTPConnection(path, 300)

    def call(self, method: str, target: str, body: Any = None) -> tuple[int, bytes]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            self.conn.request(method, target, body=payload, headers=headers)
            answer = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = UnixHTTPConnection(self.path, 300)
            self.conn.request(method, target, body=payload, headers=headers)
            answer = self.conn.getresponse()
        data = answer.read()
        if answer.will_close:
            self.conn.close()
            self.conn = UnixHTTPConnection(self.path, 300)
        return answer.status, data

    def stream_size(self, target: str) -> int:
        self.conn.request("GET", target)
        answer = self.conn.getresponse()
        total = 0
        while chunk := answer.read(1 << 20):
            total += len(chunk)
        self.conn.close()
        self.conn = UnixHTTPConnection(self.path, 300)
        return total


def timed(fn: Callable[[], Any], samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(path: str, ids: list[str], log_container: str, scale: float) -> dict[str, Any]:
    """One round of every measurement against ``path`` (runs in the child)."""
    client = Client(path)
    client.call("GET", f"{V}/_ping")
    out: dict[str, Any] = {}
    out["list"] = timed(
        lambda: client.call("GET", f"{V}/containers/json?all=1"), max(5, int(20 * scale))
    )
    picks = iter(ids * 10)
    out["inspect"] = timed(
        lambda: client.call("GET", f"{V}/containers/{next(picks)}/json"), max(20, int(200 * scale))
    )

    def lifecycle() -> None:
        status, data = client.call(
            "POST", f"{V}/containers/create", {"Image": IMAGE, "Cmd": ["true"]}
        )
        assert status == 201, data
        cid = json.loads(data)["Id"]
        status, data = client.call("POST", f"{V}/containers/{cid}/start")
        assert status == 204, data
        status, data = client.call("DELETE", f"{V}/containers/{cid}?force=1")
        assert status == 204, data

    out["create_start_remove"] = timed(lifecycle, max(3, int(10 * scale)))
    rates = []
    for _ in range(max(1, int(3 * scale))):
        start = time.perf_counter()
        size = client.stream_size(f"{V}/containers/{log_container}/logs?stdout=1")
        rates.append(size / (time.perf_counter() - start))
    out["logs_bytes"] = size
    out["logs_rate"] = rates
    env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.mkdtemp(prefix="ds01-bench-cli-")}
    cli = ["docker", "-H", f"unix://{path}"]
    out["cli_inspect"] = timed(
        lambda: subprocess.run([*cli, "inspect", ids[0]], env=env, capture_output=True, check=True),
        max(5, int(20 * scale)),
    )
    out["cli_ps"] = timed(
        lambda: subprocess.run([*cli, "ps", "-a", "-q"], env=env, capture_output=True, check=True),
        max(5, int(20 * scale)),
    )
    return out


def copying_proxy(listen: str, upstream: str) -> int:
    """The floor: a process that only copies bytes between a client and the engine (no parsing,
    no policy, one kept engine connection per client). What any proxy in Python costs here."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listen)
    os.chmod(listen, 0o666)
    server.listen(64)
    pid = os.fork()
    if pid:
        server.close()
        return pid
    import threading

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()
            source.close()

    try:
        while True:
            client, _ = server.accept()
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(upstream)
            threading.Thread(target=pump, args=(engine, client), daemon=True).start()
            threading.Thread(target=pump, args=(client, engine), daemon=True).start()
    finally:
        os._exit(0)


def in_child(uid: int, gid: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            if uid:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            os.write(write_end, json.dumps(fn()).encode())
        except BaseException as exc:  # report, then leave without running the parent's cleanup
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    result = json.loads(data)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def ensure_user() -> tuple[pwd.struct_passwd, bool]:
    try:
        return pwd.getpwnam(USER), False
    except KeyError:
        subprocess.run(["useradd", "--create-home", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER), True


def main() -> None:
    scale = float(os.environ.get("DS01_BENCH_SCALE", "1"))
    direct = os.environ.get("DS01_BENCH_ENGINE", "/var/run/docker.sock")
    user, created_user = ensure_user()
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-gw-"))
    os.chmod(workdir, 0o755)
    config = workdir / "ds01.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(workdir / k) for k in ("state_dir", "log_dir", "runtime_dir")},
                "gpu": {"backend": "simulated"},
                "gateway": {"upstream": direct},
            }
        )
    )
    sock = str(workdir / "docker.sock")
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ds01_core.transports.gateway.main import main; main()",
            "--config",
            str(config),
            "--socket",
            sock,
        ],
        stderr=open(workdir / "gateway.log", "w"),  # noqa: SIM115
    )
    ids: list[str] = []
    floor = 0
    try:
        while not os.path.exists(sock):
            if gateway.poll() is not None:
                raise RuntimeError((workdir / "gateway.log").read_text())
            time.sleep(0.05)

        def setup() -> dict[str, Any]:
            client = Client(sock)
            made = []
            for i in range(CONTAINERS):
                status, data = client.call(
                    "POST",
                    f"{V}/containers/create?name=ds01-bench-gw-{os.getpid()}-{i}",
                    {"Image": IMAGE, "Cmd": ["sleep", "1"]},
                )
                assert status == 201, data
                made.append(json.loads(data)["Id"])
                if i % 50 == 49:
                    print(f"  created {i + 1}/{CONTAINERS} containers", flush=True)
            line = "x" * 99
            status, data = client.call(
                "POST",
                f"{V}/containers/create?name=ds01-bench-gw-logs-{os.getpid()}",
                {"Image": IMAGE, "Cmd": ["sh", "-c", f"yes {line} | head -c {LOG_BYTES}"]},
            )
            assert status == 201, data
            logs = json.loads(data)["Id"]
            client.call("POST", f"{V}/containers/{logs}/start")
            client.call("POST", f"{V}/containers/{logs}/wait")
            return {"ids": made, "logs": logs}

        made = in_child(user.pw_uid, user.pw_gid, setup)
        ids = made["ids"] + [made["logs"]]
        floor_sock = str(workdir / "floor.sock")
        floor = copying_proxy(floor_sock, direct)
        rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "floor": [], "gateway": []}
        targets = (("direct", direct, 0), ("floor", floor_sock, 0), ("gateway", sock, user.pw_uid))
        for round_number in range(3):
            for name, path, uid in targets:
                rounds[name].append(
                    in_child(
                        uid,
                        user.pw_gid,
                        lambda p=path: measure(p, made["ids"], made["logs"], scale),
                    )
                )
            print(f"  round {round_number + 1}/3 done", flush=True)
        report(rounds)
    finally:
        if floor:
            os.kill(floor, signal.SIGKILL)
            os.waitpid(floor, 0)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(10)
        from ds01_core.domain.docker_engine import DockerAdapter

        engine = DockerAdapter.from_env()
        for cid in ids:
            with contextlib.suppress(Exception):
                engine.remove(cid, force=True)
        if created_user:
            subprocess.run(["userdel", "--remove", USER], capture_output=True)


def report(rounds: dict[str, list[dict[str, Any]]]) -> None:
    """Medians; ratio = gateway / direct (the target), floor = a bytes-only proxy / direct."""

    def median(name: str, key: str) -> float:
        return statistics.median(v for r in rounds[name] for v in r[key])

    print(
        f"{'measurement':<30}{'direct':>11}{'floor':>11}{'gateway':>11}{'floor':>8}{'ratio':>8}"
        "  target"
    )
    for key, label in (
        ("list", "API: list 200 containers"),
        ("inspect", "API: inspect"),
        ("create_start_remove", "API: create+start+remove"),
        ("cli_ps", "CLI: docker ps -a (200)"),
        ("cli_inspect", "CLI: docker inspect"),
    ):
        d, f, g = (median(n, key) * 1000 for n in ("direct", "floor", "gateway"))
        verdict = "ok" if g / d <= 1.2 else "MISSED"
        print(
            f"{label:<30}{d:>9.2f}ms{f:>9.2f}ms{g:>9.2f}ms{f / d:>7.2f}x{g / d:>7.2f}x"
            f"  <= 1.2x {verdict}"
        )
    d, f, g = (median(n, "logs_rate") / 2**20 for n in ("direct", "floor", "gateway"))
    verdict = "ok" if g / d >= 0.8 else "MISSED"
    size = rounds["direct"][0]["logs_bytes"] / 2**20
    label = f"API: logs ({size:.0f} MiB)"
    print(
        f"{label:<30}{d:>6.0f}MiB/s{f:>6.0f}MiB/s{g:>6.0f}MiB/s{f / d:>7.2f}x{g / d:>7.2f}x"
        f"  >= 0.8x {verdict}"
    )
