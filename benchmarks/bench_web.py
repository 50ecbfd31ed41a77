"""The REST API under load: 100 simulated users polling it at once, against a static file served
by the same server in the same run (the baseline).

Set-up: 100 real accounts (``ds01web000`` … ``ds01web099``, made for the run and removed after),
each with a personal token; 20 of them own a running container (created through the API, so
the listing and the keep-alives have real work to find). ``ds01-web`` runs as its own process
(``python -m ds01_web.main``: uvicorn, the real runtime, the real engine) on a loopback port.
Load comes from ``locust`` headless in another process: each simulated user polls what the
dashboard polls — ``GET /api/v1/containers``, ``/quota``, ``/gpus`` — now and then keeps its
container alive (a write, audited), loads the dashboard page and its htmx sections with a
browser session (made in the real session store, as /login makes it), and fetches
``/static/ds01.css``; 1 to 3 s between requests.

Locust runs in its own process: its gevent patches sockets and threads, which the server (and
its thread pool) must not get; separate processes also keep the load generator's CPU apart from
the server's, as a browser's would be.

Reported: p50/p95 per request kind, the API reads together, the write, the static file, and the
API's p50/p95 as a ratio to the static file's (the server's own floor: routing, HTTP, one
request). The plan's target is p95 under 200 ms for API calls on the real server.

    python -m benchmarks web
    DS01_BENCH_SCALE=0.3 python -m benchmarks web   # a shorter run, same shape
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

USERS = 100
WITH_CONTAINERS = 20
PREFIX = "ds01web"
IMAGE = "ds01-test:busybox"

LOCUSTFILE = """
import json, os, random
from locust import HttpUser, between, task

TOKENS = json.load(open(os.environ["DS01_BENCH_TOKENS"]))
_next = iter(range(10**6))


class Dashboard(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        me = TOKENS[next(_next) % len(TOKENS)]
        self.client.headers["Authorization"] = "Bearer " + me["token"]
        self.page = {"Cookie": "ds01_session=" + me["session"]}
        self.box = me["box"]

    # the dashboard in a browser: the page, then its sections as htmx polls them; a redirect
    # (to /login) or any other answer than the page is a failure, not a fast success
    def _page(self, path, name, htmx):
        headers = {**self.page, "HX-Request": "true"} if htmx else self.page
        with self.client.get(path, headers=headers, name=name, allow_redirects=False,
                             catch_response=True) as answer:
            if answer.status_code != 200 or "Traceback" in answer.text:
                answer.failure(f"{answer.status_code} {answer.headers.get('location', '')}")

    @task(1)
    def dashboard(self):
        self._page("/", "GET / (dashboard page)", False)

    @task(3)
    def dashboard_containers(self):
        self._page("/dashboard/containers", "GET /dashboard/{section} (htmx poll)", True)

    @task(2)
    def dashboard_other(self):
        section = random.choice(["quota", "queue", "week", "activity"])
        self._page("/dashboard/" + section, "GET /dashboard/{section} (htmx poll)", True)

    @task(3)
    def containers(self):
        self.client.get("/api/v1/containers", name="GET /api/v1/containers")

    @task(2)
    def quota(self):
        self.client.get("/api/v1/quota", name="GET /api/v1/quota")

    @task(2)
    def gpus(self):
        self.client.get("/api/v1/gpus", name="GET /api/v1/gpus")

    @task(2)
    def static(self):
        self.client.get("/static/ds01.css", name="GET /static/ds01.css")

    @task(1)
    def keepalive(self):
        if self.box:
            self.client.post(
                "/api/v1/containers/" + self.box + "/keepalive",
                json={"seconds": 600},
                name="POST /api/v1/containers/{name}/keepalive",
            )
"""

READS = ("GET /api/v1/containers", "GET /api/v1/quota", "GET /api/v1/gpus")
PAGES = ("GET / (dashboard page)", "GET /dashboard/{section} (htmx poll)")
WRITE = "POST /api/v1/containers/{name}/keepalive"
STATIC = "GET /static/ds01.css"


def make_users() -> tuple[list[pwd.struct_passwd], list[str]]:
    """The run's accounts; the names of those made here (removed at the end)."""
    made = []
    for i in range(USERS):
        name = f"{PREFIX}{i:03d}"
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
            made.append(name)
    return [pwd.getpwnam(f"{PREFIX}{i:03d}") for i in range(USERS)], made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(base: str, method: str, path: str, token: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as answer:
        return json.loads(answer.read())


def wait_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/static/ds01.css", timeout=2).read()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ds01-web did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def stats(path: Path) -> dict[str, dict[str, float]]:
    """Locust's summary CSV: per request name, count, failures, p50, p95 (ms)."""
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["Name"]] = {
                "count": float(row["Request Count"]),
                "failures": float(row["Failure Count"]),
                "p50": float(row["50%"]),
                "p95": float(row["95%"]),
            }
    return rows


def failed(path: Path) -> str:
    """How many requests failed, and why (locust's failures CSV), in one line."""
    if not path.exists():
        return "0"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    count = sum(int(r["Occurrences"]) for r in rows)
    kinds = sorted({r["Error"][:80] for r in rows})
    return f"{count}" + (f" ({'; '.join(kinds)})" if kinds else "")


def percentiles(history: Path, names: tuple[str, ...]) -> tuple[float, float]:
    """p50 and p95 of several request kinds together, weighted by their counts (from locust's
    per-kind percentiles: an estimate, as locust's own "Aggregated" line is)."""
    rows = stats(history)
    total = sum(rows[n]["count"] for n in names if n in rows) or 1.0
    p50 = sum(rows[n]["p50"] * rows[n]["count"] for n in names if n in rows) / total
    p95 = max(rows[n]["p95"] for n in names if n in rows)
    return p50, p95


def main() -> None:
    from ds01_core.domain.docker_engine import DockerAdapter
    from ds01_core.framework.runtime import load_runtime
    from ds01_core.services.caller import Caller
    from ds01_core.services.catalogue import call as call_op
    from ds01_core.services.operations import ServiceContext
    from ds01_web.sessions import SessionStore
    from tests.helpers.config import write_config

    if shutil.which("locust") is None and not (Path(sys.executable).parent / "locust").exists():
        raise RuntimeError("locust is not installed (tox -e bench installs it)")
    scale = float(os.environ.get("DS01_BENCH_SCALE", "1"))
    seconds = max(15, int(60 * scale))
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-web-"))
    os.chmod(workdir, 0o755)
    config = write_config(workdir, {"limits": {"defaults": {"max_containers_per_user": 5}}})
    users, made = make_users()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tag = os.getpid()
    boxes: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    log = workdir / "server.log"
    try:
        runtime = load_runtime(str(config))
        sessions = SessionStore.under(runtime.config.paths.state_dir)
        tokens = []
        for user in users:
            ctx = ServiceContext(runtime, Caller(user.pw_name, user.pw_uid, False))
            made_token = call_op(
                ctx, "web.token_create", name="bench", scope=["read", "write"], expires="1d"
            )
            secret, _ = sessions.create(user.pw_name, user.pw_uid, "pam", time.time())
            tokens.append(
                {
                    "user": user.pw_name,
                    "token": made_token["token"],
                    "session": secret,  # a signed-in browser, as /login would make it
                    "box": None,
                }
            )
        runtime.close()
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ds01_web.main",
                    "--config",
                    str(config),
                    "--listen",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_up(base, server, log)
        for entry in tokens[:WITH_CONTAINERS]:
            box = f"bench-web-{entry['user']}-{tag}"
            body = {"name": box, "image": IMAGE, "cpu_only": True, "command": ["sleep", "3600"]}
            call(base, "POST", "/api/v1/containers", entry["token"], body)
            call(base, "POST", f"/api/v1/containers/{box}/start", entry["token"], {})
            entry["box"] = box
            boxes.append(box)
        token_file = workdir / "tokens.json"
        token_file.write_text(json.dumps(tokens))
        token_file.chmod(0o600)
        (workdir / "locustfile.py").write_text(LOCUSTFILE)
        locust = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(workdir / "locustfile.py"),
            "--headless",
            "--users",
            str(USERS),
            "--spawn-rate",
            "50",
            "--run-time",
            f"{seconds}s",
            "--host",
            base,
            "--csv",
            str(workdir / "load"),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        print(f"{USERS} users ({WITH_CONTAINERS} with a container) for {seconds} s against {base}")
        done = subprocess.run(
            locust,
            env={**os.environ, "DS01_BENCH_TOKENS": str(token_file)},
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=False,
        )
        if done.returncode not in (0, 1):  # 1: some requests failed (reported below)
            raise RuntimeError(f"locust failed: {done.stderr[-2000:]}")
        rows = stats(workdir / "load_stats.csv")
        print(f"{'request':<44} {'count':>6} {'fail':>5} {'p50 ms':>8} {'p95 ms':>8}")
        for name in (*READS, WRITE, *PAGES, STATIC):
            row = rows.get(name)
            if row:
                print(
                    f"{name:<44} {row['count']:6.0f} {row['failures']:5.0f} "
                    f"{row['p50']:8.0f} {row['p95']:8.0f}"
                )
        api50, api95 = percentiles(workdir / "load_stats.csv", READS)
        page50, page95 = percentiles(workdir / "load_stats.csv", PAGES)
        static = rows[STATIC]
        print(f"\nAPI reads together      p50 {api50:6.0f} ms   p95 {api95:6.0f} ms")
        print(f"dashboard together      p50 {page50:6.0f} ms   p95 {page95:6.0f} ms")
        print(f"static file (baseline)  p50 {static['p50']:6.0f} ms   p95 {static['p95']:6.0f} ms")
        print(
            f"ratio API/static        p50 {api50 / max(static['p50'], 1):6.1f}x  "
            f"p95 {api95 / max(static['p95'], 1):6.1f}x   (target: API p95 < 200 ms)"
        )
        print(
            f"ratio dashboard/static  p50 {page50 / max(static['p50'], 1):6.1f}x  "
            f"p95 {page95 / max(static['p95'], 1):6.1f}x"
        )
        total = rows.get("Aggregated", {}).get("count", 0)
        print(f"requests {total:.0f}, failed {failed(workdir / 'load_failures.csv')}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        docker = DockerAdapter.from_env()
        for summary in docker.list_containers(all=True):
            if any(n.lstrip("/") in boxes for n in summary.get("Names") or ()):
                docker.remove(summary["Id"], force=True)
        docker.close()
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
