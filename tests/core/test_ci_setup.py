"""CI runs what the README tells developers to run, and cannot pass by skipping.

Cheap text checks on the CI script, tox.ini and README.md: the one test command must stay the
same in all three places, and the engine set-up must come before it.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_COMMAND = "tox -e test"


def commands(path: Path) -> list[str]:
    """The script's lines that are not comments or blank."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def runs(line: str, command: str) -> bool:
    return re.search(rf"(^|\s){re.escape(command)}(\s|$)", line) is not None


def test_ci_runs_the_test_command_after_the_engine_setup() -> None:
    lines = commands(ROOT / ".ci" / "run")
    assert "set -euo pipefail" in lines
    setup = [i for i, line in enumerate(lines) if runs(line, "scripts/ci/setup-docker.sh")]
    test = [i for i, line in enumerate(lines) if runs(line, TEST_COMMAND)]
    lint = [i for i, line in enumerate(lines) if runs(line, "tox -e lint")]
    assert setup and test and lint, ".ci/run must set up Docker, then run lint and the tests"
    assert setup[0] < test[0]


def test_readme_names_the_same_test_command() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    console = re.findall(r"^\s*\$ (.+?)\s*$", readme.read_text(), flags=re.MULTILINE)
    assert TEST_COMMAND in console, f"README.md must show `$ {TEST_COMMAND}`"


def test_tox_test_env_runs_pytest_and_passes_ci_through() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    env = tox["testenv:test"]
    assert "pytest" in env["commands"]
    assert "CI" in env["passenv"].split()
    assert not env.getboolean("skip_install", fallback=False)
