"""ds01 installed, as docs/install.md says, in a container whose PID 1 is systemd 252.

The container (scripts/ci/systemd-container.sh, image from scripts/ci/systemd-image.sh) has
Debian's Python 3.11 but no way to a package registry. ds01 goes in the way an admin installs
it: a venv at /opt/ds01 and ``pip install`` of ds01's wheel, built here from this checkout
(``--no-index --no-deps``); its dependencies are copied from this test environment (same
Python minor version, so their compiled parts load), file by file as their RECORDs list them.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINER_SCRIPT = ROOT / "scripts" / "ci" / "systemd-container.sh"
VENV = "/opt/ds01"
SITE = f"{VENV}/lib/python3.11/site-packages"


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    names = []
    for req in dist.requires or []:
        if "extra ==" in req.replace('"', "").replace("'", ""):
            continue
        match = re.match(r"[A-Za-z0-9._-]+", req)
        if match:
            names.append(match.group(0))
    return names


def dependency_closure(name: str) -> list[metadata.Distribution]:
    """The installed distributions ``name`` needs at run time (not itself), transitively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = _requirement_names(metadata.distribution(name))
    while todo:
        dep = todo.pop()
        key = re.sub(r"[-_.]+", "-", dep).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(dep)
        except metadata.PackageNotFoundError:
            continue  # a requirement behind a marker that does not apply here
        seen[key] = dist
        todo.extend(_requirement_names(dist))
    return list(seen.values())


def stage_site_packages(dists: Iterable[metadata.Distribution], into: Path) -> None:
    """Copy each distribution's files (those inside site-packages) under ``into``."""
    for dist in dists:
        base = Path(str(dist.locate_file("")))
        for entry in dist.files or []:
            if entry.parts and entry.parts[0] == "..":
                continue  # console scripts and the like, outside site-packages
            source = base / entry
            if not source.is_file():
                continue
            target = into / entry
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build_wheel(into: Path, source: Path = ROOT, pattern: str = "ds01-*.whl") -> Path:
    """ds01's wheel from this checkout (what ``pip install /path/to/ds01`` would install), or
    a plugin's (``source`` its folder, ``pattern`` its wheel's name)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(into),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = into.glob(pattern)
    return wheel


class SystemdContainer:
    """A running container with systemd as PID 1; ``sh`` runs a command in it."""

    def __init__(self, name: str):
        self.name = name

    def start(self, *docker_args: str) -> None:
        run(["bash", str(CONTAINER_SCRIPT), "start", self.name, *docker_args])

    def stop(self) -> None:
        run(["bash", str(CONTAINER_SCRIPT), "stop", self.name])

    def sh(self, script: str, *, user: str | None = None, check: bool = True) -> str:
        """Run ``script`` with bash in the container (as ``user`` via runuser); its stdout."""
        command = ["docker", "exec", "-i", self.name]
        if user:
            command += ["runuser", "-u", user, "--"]
        result = subprocess.run(
            [*command, "bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in {self.name}: {script}\nexit {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n"
                + self.sh("journalctl -n 40 --no-pager -o cat || true", check=False)
            )
        return result.stdout

    def copy_in(self, source: Path, target: str) -> None:
        """``source`` (a file, or a folder's contents) to ``target`` in the container."""
        src = f"{source}/." if source.is_dir() else str(source)
        run(["docker", "cp", src, f"{self.name}:{target}"])

    def install_ds01(self, wheel: Path, site_packages: Path) -> None:
        """docs/install.md's "The core", without a registry: venv, the wheel, the deps."""
        self.sh(f"python3 -m venv {VENV}")
        self.sh("mkdir -p /tmp/ds01-install")
        self.copy_in(wheel, f"/tmp/ds01-install/{wheel.name}")
        self.sh(
            f"{VENV}/bin/pip install --quiet --no-index --no-deps "
            f"--disable-pip-version-check /tmp/ds01-install/{wheel.name}"
        )
        self.copy_in(site_packages, SITE)

    def install_wheel(self, wheel: Path) -> None:
        """A plugin's wheel into ds01's venv (its dependencies staged with the core's)."""
        self.copy_in(wheel, f"/tmp/ds01-install/{wheel.name}")
        self.sh(
            f"{VENV}/bin/pip install --quiet --no-index --no-deps "
            f"--disable-pip-version-check /tmp/ds01-install/{wheel.name}"
        )


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result.stdout
