"""Fixtures for the core tests: real installed plugin distributions and fresh plugin hosts."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ds01_core.framework.manager import EntryPointSource

DISTS = Path(__file__).resolve().parent.parent / "fixtures" / "dists"


@pytest.fixture(scope="session")
def installed_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each test distribution pip-installed (for real: wheel built, metadata written) into its
    own target directory, so a test chooses exactly which ones are "installed".

    ``DS01_TEST_DISTS=<dir>`` keeps the installs there and reuses them in later sessions (the
    mutation check runs the same tests hundreds of times; the distributions do not change).
    """
    cache = os.environ.get("DS01_TEST_DISTS")
    targets = {}
    for project in sorted(DISTS.iterdir()):
        if cache:
            target = Path(cache) / project.name
            if (target / ".installed").exists():
                targets[project.name] = target
                continue
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
        else:
            target = tmp_path_factory.mktemp(project.name)
        build = tmp_path_factory.mktemp(project.name + "-src")
        shutil.copytree(project, build, dirs_exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
                str(target),
                str(build),
            ],
            check=True,
        )
        (target / ".installed").touch()
        targets[project.name] = target
    return targets


@pytest.fixture
def use_dists(
    installed_dists: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., EntryPointSource]:
    """Make the named test distributions importable and return their entry points as the
    plugin source (the machine's other installed ds01 plugins are left out)."""

    def use(*names: str) -> EntryPointSource:
        paths = [str(installed_dists[name]) for name in names]
        for path in paths:
            monkeypatch.syspath_prepend(path)

        def load() -> list[md.EntryPoint]:
            return [
                ep
                for dist in md.distributions(path=paths)
                for ep in dist.entry_points
                if ep.group == "ds01"
            ]

        return EntryPointSource(load)

    return use
