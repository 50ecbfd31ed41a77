"""Applying every user's cgroup limits after a configuration change, on the real cgroup tree.

Set-up: 200 users, each with aggregate CPU, memory and pids limits, under a throw-away root in
this machine's cgroup hierarchy (no containers: the per-user limits are what is measured).
Measured, in the same run:

- baseline: writing the same files with plain ``open``/``write`` (the I/O no enforcer avoids);
- first apply (cgroups created), a change of ``memory_max`` for everyone, and a cycle with no
  change — which must write nothing.

    python -m benchmarks cgroups
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import report
from ds01_cgroups import install
from ds01_cgroups.files import write_file
from ds01_core.domain.user_limits import effective_limits
from ds01_core.framework.runtime import load_runtime

USERS = 200
CGROUP_FS = Path("/sys/fs/cgroup")


def make_runtime(workdir: Path, root: str, memory: str):
    config = workdir / f"ds01-{memory}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(workdir / k) for k in ("state_dir", "log_dir", "runtime_dir")},
                "gpu": {"backend": "simulated"},
                "limits": {
                    "defaults": {"cpu_quota": 2, "memory_max": memory, "tasks_max": 512},
                    "users": {f"bench{i:03d}": {} for i in range(USERS)},
                },
                "plugins": {"cgroups": {"root": root, "driver": "cgroupfs", "version": "v1"}},
            }
        )
    )
    return load_runtime(str(config))


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ds01-bench-cgroups-"))
    root = f"ds01bench_{secrets.token_hex(3)}"
    writes = 0

    def counting_write(path: Path, text: str) -> None:
        nonlocal writes
        writes += 1
        write_file(path, text)

    def enforce_all(runtime) -> float:
        enforcer = install(runtime, write=counting_write)
        users = [f"bench{i:03d}" for i in range(USERS)]
        limits = {u: effective_limits(runtime, u) for u in users}
        start = time.perf_counter()
        for user in users:
            enforcer.enforce(user, limits[user], limits[user].group, [])
        return time.perf_counter() - start

    try:
        first = enforce_all(make_runtime(workdir, root, "8g"))
        first_writes, writes = writes, 0
        changed_runtime = make_runtime(workdir, root, "6g")
        changed = enforce_all(changed_runtime)
        changed_writes, writes = writes, 0
        enforcer = install(changed_runtime, write=counting_write)
        start = time.perf_counter()
        for i in range(USERS):
            user = f"bench{i:03d}"
            limits = effective_limits(changed_runtime, user)
            enforcer.enforce(user, limits, limits.group, [])
        steady = time.perf_counter() - start
        steady_writes = writes

        files = sorted((CGROUP_FS / "memory" / root).rglob("memory.limit_in_bytes"))
        start = time.perf_counter()
        for path in files:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"6442450944")
            os.close(fd)
        baseline = (time.perf_counter() - start) * changed_writes / max(len(files), 1)
        report(
            f"cgroup limits for {USERS} users (v1, cgroupfs); writes: first {first_writes}, "
            f"after a change {changed_writes}, steady {steady_writes}",
            "baseline (raw writes)",
            {
                "baseline (raw writes)": baseline,
                "first apply": first,
                "apply a change": changed,
                "cycle, no change": steady,
            },
        )
        print(
            f"steady cycle wrote {steady_writes} files: {'PASS' if steady_writes == 0 else 'FAIL'}"
        )
    finally:
        for controller in CGROUP_FS.iterdir():
            base = controller / root
            if base.is_dir():
                for d in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if d.is_dir():
                        d.rmdir()
                base.rmdir()
