"""Test configuration files: state, logs and runtime files in a directory of the test's own, the
simulated GPU host, and whatever a test adds on top."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_config(
    directory: Path, extra: Mapping[str, Any] | None = None, name: str = "ds01.yaml"
) -> Path:
    """``directory/name``, with ``state/``, ``log/`` and ``run/`` created beside it and the GPU
    backend simulated, so nothing touches the host; ``extra`` is deep-merged over that."""
    dirs = {
        key: directory / sub
        for key, sub in (("state_dir", "state"), ("log_dir", "log"), ("runtime_dir", "run"))
    }
    for path in dirs.values():
        path.mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "paths": {key: str(path) for key, path in dirs.items()},
        "gpu": {"backend": "simulated"},
    }
    path = directory / name
    path.write_text(yaml.safe_dump(deep_merge(data, extra or {}), sort_keys=False))
    return path
