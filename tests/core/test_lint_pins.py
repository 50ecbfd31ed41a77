"""The pre-commit hooks and ``tox -e lint`` run the same tools at the same pinned versions."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def tox_lint_deps() -> set[str]:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    lines = (line.split("#", 1)[0].strip() for line in tox["testenv:lint"]["deps"].splitlines())
    return {line for line in lines if line}


def pre_commit_deps() -> set[str]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    return {dep for hook in hooks for dep in hook.get("additional_dependencies", [])}


def test_pre_commit_pins_what_tox_lint_pins() -> None:
    tox, pre_commit = tox_lint_deps(), pre_commit_deps()
    assert {"ruff", "mypy"} <= {dep.split("==")[0] for dep in tox}
    assert all("==" in dep for dep in tox), f"tox -e lint: every dependency pinned: {tox}"
    assert pre_commit == tox, (
        f"only in tox.ini: {sorted(tox - pre_commit)}; "
        f"only in .pre-commit-config.yaml: {sorted(pre_commit - tox)}"
    )


def test_pre_commit_runs_what_tox_lint_runs() -> None:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    commands = {
        line.split("#", 1)[0].strip()
        for line in tox["testenv:lint"]["commands"].splitlines()
        if line.split("#", 1)[0].strip()
    }
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = {hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    # tox runs on "." and pre-commit on the files it names (--force-exclude keeps the excludes)
    assert {c.removesuffix(" .") for c in commands} == {
        e.removesuffix(" --force-exclude") for e in entries
    }
