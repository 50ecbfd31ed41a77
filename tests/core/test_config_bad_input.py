"""Bad numbers and paths are refused by ``ds01 config check``, each named by its path.

Each case is the example configuration with one value changed (NaN, infinity, an integer past
what the engine or kernel takes, a relative path), written to a file and checked with the real
command; the generic tests walk every configuration class so a field added later is covered.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from click.testing import CliRunner

from ds01_core.domain import config as cfg
from ds01_core.domain.config.checks import AbsPath
from ds01_core.transports.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ds01.yaml"


def mutated(tmp_path: Path, path: tuple[str | int, ...], value: Any) -> Path:
    """The example configuration with the value at ``path`` set to ``value``."""
    data = yaml.safe_load(EXAMPLE.read_text())
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    target = tmp_path / "ds01.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def check(file: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["config", "check", str(file)])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("limits", "defaults", "gpu_idle_threshold"),
            math.nan,
            "limits.defaults.gpu_idle_threshold: expected a finite number, got .nan",
        ),
        (
            ("limits", "groups", "student", "max_gpu_equivalents"),
            math.inf,
            "limits.groups.student.max_gpu_equivalents: expected a finite number, got .inf",
        ),
        (
            ("lifecycle", "quota_warn_at"),
            math.nan,
            "lifecycle.quota_warn_at: expected a finite number, got .nan",
        ),
        (
            ("limits", "defaults", "pids_limit"),
            10**30,
            "limits.defaults.pids_limit: 1000000000000000000000000000000 is out of range",
        ),
        (
            ("limits", "defaults", "pids_limit"),
            4 * 1024 * 1024 + 1,
            "limits.defaults.pids_limit: must be at most 4194304 (the kernel's largest pids.max)",
        ),
        (
            ("limits", "defaults", "tasks_max"),
            10**7,
            "limits.defaults.tasks_max: must be at most 4194304",
        ),
        (
            ("limits", "defaults", "io_read_iops"),
            2**63,
            "limits.defaults.io_read_iops: 9223372036854775808 is out of range",
        ),
        (
            ("limits", "defaults", "memory"),
            "9999999999t",
            "limits.defaults.memory: a size must be at most 9223372036854775807 bytes",
        ),
        (
            ("limits", "defaults", "idle_timeout"),
            math.inf,
            "limits.defaults.idle_timeout: expected a duration like '30m' or 'never', got inf",
        ),
        (
            ("lifecycle", "interval"),
            "9" * 400 + "s",
            "lifecycle.interval: a duration must be at most 36500d",
        ),
        (
            ("paths", "state_dir"),
            "var/lib/ds01",
            "paths.state_dir: must be an absolute path (starting with /), got 'var/lib/ds01'",
        ),
        (("paths", "log_dir"), "log", "paths.log_dir: must be an absolute path"),
        (("paths", "runtime_dir"), "./run", "paths.runtime_dir: must be an absolute path"),
        (("paths", "event_log"), "events.jsonl", "paths.event_log: must be an absolute path"),
        (
            ("allocation", "owner_map_dir"),
            "owners",
            "allocation.owner_map_dir: must be an absolute path",
        ),
        (
            ("gpu", "simulated", "topology"),
            "host.yaml",
            "gpu.simulated.topology: must be an absolute path",
        ),
    ],
)
def test_example_with_one_bad_value_is_refused_by_path(tmp_path, path, value, expected):
    code, output = check(mutated(tmp_path, path, value))
    assert code == 2, output
    assert "configuration refused" in output
    assert expected in output
    assert "Traceback" not in output


def test_the_example_itself_passes():
    code, output = check(EXAMPLE)
    assert code == 0, output


def _reachable_classes(root: type) -> list[type]:
    """Every attrs class reachable from ``root`` through its fields' types."""
    found: list[type] = []

    def walk(tp: Any) -> None:
        if attrs.has(tp) and tp not in found:
            found.append(tp)
            for field in attrs.fields(tp):
                walk(field.type)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(root)
    return found


def _plugin_sections() -> list[type]:
    from ds01_cgroups.config import CgroupsConfig
    from ds01_ldap.config import LdapConfig

    return [CgroupsConfig, LdapConfig]


def _resolved_fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _mentions(tp: Any, target: Any) -> bool:
    return tp is target or any(_mentions(a, target) for a in typing.get_args(tp))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_field_refuses_nan_and_infinity(bad):
    """Not field by field: every float anywhere in the configuration goes through one hook."""
    checked = 0
    for cls in _reachable_classes(cfg.Config) + _plugin_sections():
        for name, tp in _resolved_fields(cls).items():
            if not _mentions(tp, float) or name == "source":
                continue
            value: Any = [bad] if typing.get_origin(tp) is list else bad
            _obj, problems = cfg.structure_section({name: value}, cls, "section")
            assert [p.path for p in problems][:1] in (
                [f"section.{name}"],
                [f"section.{name}[0]"],
            ), (cls, name, problems)
            checked += 1
    assert checked >= 10


PATHLIKE = ("_dir", "_file", "_path", "_paths", "_roots", "_fs", "event_log", "topology")


def test_every_path_field_is_typed_absolute():
    """A field named like a path must use AbsPath, so a new one cannot slip through unchecked."""
    untyped = []
    for cls in _reachable_classes(cfg.Config) + _plugin_sections():
        for name, tp in _resolved_fields(cls).items():
            if name.endswith(PATHLIKE) and not _mentions(tp, AbsPath):
                untyped.append(f"{cls.__name__}.{name}")
    assert not untyped


def test_override_values_on_the_command_line_are_checked_the_same_way():
    from ds01_core.domain.state.overrides import OverrideError, parse_assignment

    for text, expected in (
        ("gpu_idle_threshold=.nan", "expected a finite number"),
        ("max_gpu_equivalents=.inf", "expected a finite number"),
        ("pids_limit=1000000000000000000000000000000", "is out of range"),
        ("pids_limit=5000000", "must be at most 4194304"),
    ):
        with pytest.raises(OverrideError, match=expected):
            parse_assignment(text)
