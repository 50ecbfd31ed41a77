"""What starting ``ds01`` costs: the Docker SDK (about 55 ms, requests and urllib3 with it) is
loaded only by a command that talks to Docker, not by every start (``--version``, ``--help``,
or any command a user runs over the API socket), whatever plugins are installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from ds01_core.transports.cli import main
sys.argv = ["ds01", *{args!r}]
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in ("docker", "requests", "urllib3") if m in sys.modules)
print("LOADED:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["container", "--help"]])
def test_starting_the_cli_does_not_load_the_docker_sdk(args):
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = [line for line in run.stdout.splitlines() if line.startswith("LOADED:")]
    assert loaded == ["LOADED:"], run.stdout + run.stderr
