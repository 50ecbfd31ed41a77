"""ds01's socket servers (``ds01-gateway``, ``ds01-api``) as their own processes, for tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_server(
    main: str, config: Path, socket_name: str, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Start ``main`` (``module:function``) with ``--config`` and ``--socket`` in a fresh
    directory every user can reach; yield the socket path once it exists; SIGTERM at the end."""
    module, function = main.split(":")
    directory = tempfile.mkdtemp(prefix="ds01-srv-")
    os.chmod(directory, 0o755)
    sock = os.path.join(directory, socket_name)
    log = open(os.path.join(directory, "server.log"), "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from {module} import {function}; {function}()",
            "--config",
            str(config),
            "--socket",
            sock,
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(Path(log.name).read_text())
            time.sleep(0.05)
        yield sock
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def running_api(config: Path) -> Iterator[str]:
    """``ds01-api`` on a socket users can reach; yields the socket path."""
    with running_server("ds01_core.transports.api_socket.main:main", config, "api.sock") as sock:
        yield sock
