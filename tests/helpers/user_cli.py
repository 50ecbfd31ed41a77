"""The ``ds01`` command as a real non-root user runs it.

The test interpreter lives where other users cannot read it (pyenv under /root, a tox env in
a private checkout), so the user's ``ds01`` is Debian's own ``python3`` with a copy of this
environment's installed packages (ds01, its plugins and their dependencies) in a directory
every user can read: the same code the tests import, started the way a user starts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"


def build_user_cli() -> Path:
    """A world-readable directory with ``bin/ds01`` (and ``bin/ds01-api``) for any user."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise RuntimeError(f"{SYSTEM_PYTHON} is needed to run ds01 as another user")
    root = Path(tempfile.mkdtemp(prefix="ds01-user-cli-"))
    root.chmod(0o755)
    site = root / "site"
    purelib = Path(sysconfig.get_paths()["purelib"])
    shutil.copytree(
        purelib,
        site,
        ignore=shutil.ignore_patterns("__pycache__", "pip", "pip-*", "_pytest", "hypothesis*"),
        symlinks=True,
    )
    # the ds01_core the tests import (the checkout, first on pytest's path), not an older wheel
    import ds01_core

    shutil.rmtree(site / "ds01_core", ignore_errors=True)
    shutil.copytree(
        Path(ds01_core.__file__).parent,
        site / "ds01_core",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # compiled once here, by the Python that runs it: a user cannot write __pycache__ in this
    # root-owned copy, so without these every run would compile each module it imports again
    # (about a second per ``ds01`` call); exit status ignored: a file that does not compile
    # (a third-party package's Python 2 test data, say) is only compiled again when imported
    subprocess.run(
        [SYSTEM_PYTHON, "-m", "compileall", "-q", "-j", "0", str(site)],
        capture_output=True,
        check=False,
        timeout=600,
    )
    bindir = root / "bin"
    bindir.mkdir()
    for name, target in (
        ("ds01", "ds01_core.transports.cli:main"),
        ("ds01-api", "ds01_core.transports.api_socket.main:main"),
    ):
        module, func = target.split(":")
        script = bindir / name
        script.write_text(
            f"#!{SYSTEM_PYTHON} -I\n"
            "import sys\n"
            f"sys.path.insert(0, {str(site)!r})\n"
            f"from {module} import {func}\n"
            f"sys.exit({func}())\n"
        )
        script.chmod(0o755)
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))
    return root


def run_as(
    user: Any,
    cli_root: Path,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``ds01 ARGS`` run by ``user`` (``runuser``, a clean environment, the user's home as the
    working directory): exactly what that user would see."""
    base = {
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        "PATH": f"{cli_root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }
    base.update(env or {})
    return subprocess.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in base.items()),
            str(cli_root / "bin" / "ds01"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=user.home,
        input=input,
    )
