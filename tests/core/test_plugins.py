"""Plugin discovery and loading, through real installed distributions with entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import BUILTIN_PLUGINS, PluginStartupError, make_plugin_host
from ds01_core.framework.runtime import load_runtime


def test_installed_plugin_is_found_with_distribution_version_and_hooks(use_dists):
    host = make_plugin_host(entry_points=use_dists("ds01-sample-plugin"))
    record = host.record("sample")
    assert record is not None
    assert record.status == "active"
    assert record.distribution == "ds01-sample-plugin"
    assert record.version == "1.2.3"
    assert record.hooks == [
        "add_cli_commands",
        "configure",
        "detect_workloads",
        "plugin_config_sections",
    ]
    assert not record.builtin


def test_builtins_are_registered_before_entry_points(use_dists):
    host = make_plugin_host(entry_points=use_dists("ds01-sample-plugin"))
    names = [r.name for r in host.records]
    assert names[: len(BUILTIN_PLUGINS)] == [name for name, _ in BUILTIN_PLUGINS]
    assert all(r.builtin for r in host.records[: len(BUILTIN_PLUGINS)])


def test_import_error_is_reported_with_entry_point_distribution_version_and_error(
    use_dists, caplog
):
    host = make_plugin_host(entry_points=use_dists("ds01-sample-plugin", "ds01-broken-plugin"))
    broken = host.record("broken")
    assert broken.status == "failed"
    assert broken.distribution == "ds01-broken-plugin"
    assert broken.version == "0.0.1"
    assert "ModuleNotFoundError" in broken.error
    assert "ds01_dependency_that_is_not_installed" in broken.error
    # the log line names all of it too, and the other plugin still loads
    assert "'broken' (distribution ds01-broken-plugin 0.0.1) failed to import" in caplog.text
    assert host.record("sample").status == "active"


def test_disabled_plugin_is_not_imported_or_registered(use_dists):
    host = make_plugin_host(
        disabled=["sample", "broken"],
        entry_points=use_dists("ds01-sample-plugin", "ds01-broken-plugin"),
    )
    assert host.record("sample").status == "disabled"
    assert host.record("broken").status == "disabled"
    assert host.pm.get_plugin("sample") is None
    assert "ds01_broken_plugin" not in sys.modules


def test_builtin_can_be_disabled_by_name():
    host = make_plugin_host(disabled=["whole-gpu-allocator"], load_entry_points=False)
    assert host.record("whole-gpu-allocator").status == "disabled"
    assert host.pm.get_plugin("whole-gpu-allocator") is None


def test_required_but_missing_stops_start_up(use_dists):
    with pytest.raises(PluginStartupError, match="required plugin 'mig' is not installed"):
        make_plugin_host(required=["mig"], entry_points=use_dists("ds01-sample-plugin"))


def test_required_but_failing_stops_start_up_with_the_error(use_dists):
    with pytest.raises(PluginStartupError) as info:
        make_plugin_host(required=["broken"], entry_points=use_dists("ds01-broken-plugin"))
    message = str(info.value)
    assert "required plugin 'broken' (ds01-broken-plugin 0.0.1) failed to load" in message
    assert "ds01_dependency_that_is_not_installed" in message


def test_misspelt_hook_is_a_start_up_error_naming_the_plugin(use_dists):
    with pytest.raises(PluginStartupError, match=r"plugin 'typo' implements a hook that does not"):
        make_plugin_host(entry_points=use_dists("ds01-typo-plugin"))


def test_no_plugins_loads_builtins_only(use_dists):
    host = make_plugin_host(entry_points=use_dists("ds01-sample-plugin"), load_entry_points=False)
    assert host.record("sample") is None
    assert {r.name for r in host.records} == {name for name, _ in BUILTIN_PLUGINS}


class _Recorder:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    @hookimpl
    def detect_workloads(self):
        self.calls.append(self.name)
        return []


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([], ["a", "b", "c"]),  # no admin order: load order
        (["c", "b", "a"], ["c", "b", "a"]),
        (["b"], ["b", "a", "c"]),  # named first, the rest in load order
    ],
)
def test_admin_order_decides_call_order(order, expected):
    calls: list[str] = []
    plugins = [(n, _Recorder(n, calls)) for n in ("a", "b", "c")]
    host = make_plugin_host(extra=plugins, order=order, load_entry_points=False)
    host.hooks.detect_workloads(runtime=None)
    assert calls == expected


def test_plugin_config_section_is_typed_and_validated_with_its_path(use_dists, tmp_path):
    cfg = tmp_path / "ds01.yaml"
    cfg.write_text("plugins:\n  sample:\n    threshold: high\n    colour: red\n")
    from ds01_core.domain.config import ConfigError

    with pytest.raises(ConfigError) as info:
        load_runtime(str(cfg), entry_points=use_dists("ds01-sample-plugin"))
    problems = [str(p) for p in info.value.problems]
    assert problems == [
        "plugins.sample.threshold: expected a number, got 'high'",
        "plugins.sample.colour: unknown key (check the spelling; see docs/config.md)",
    ]
    cfg.write_text("plugins:\n  sample:\n    threshold: 0.9\n")
    runtime = load_runtime(str(cfg), entry_points=use_dists("ds01-sample-plugin"))
    assert runtime.plugin_config("sample").threshold == 0.9
    assert runtime.sample_configured.greeting == "hello"  # configure hook ran with the section


def test_section_of_a_disabled_plugin_is_kept_not_refused(use_dists, tmp_path):
    cfg = tmp_path / "ds01.yaml"
    cfg.write_text("plugins:\n  disabled: [sample]\n  sample:\n    anything: 1\n")
    runtime = load_runtime(str(cfg), entry_points=use_dists("ds01-sample-plugin"))
    assert runtime.plugin_config("sample") == {"anything": 1}


def _cli(args, dists, env_extra=None, installed=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(installed[d]) for d in dists)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", "from ds01_core.transports.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_ds01_plugins_lists_every_plugin_as_json(installed_dists, tmp_path):
    cfg = tmp_path / "ds01.yaml"
    cfg.write_text("plugins:\n  disabled: [whole-gpu-allocator]\n")
    result = _cli(
        ["--config", str(cfg), "plugins", "--json"],
        ["ds01-sample-plugin", "ds01-broken-plugin"],
        installed=installed_dists,
    )
    assert result.returncode == 0, result.stderr
    listing = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert listing["sample"]["status"] == "active"
    assert listing["sample"]["distribution"] == "ds01-sample-plugin"
    assert listing["sample"]["version"] == "1.2.3"
    assert "detect_workloads" in listing["sample"]["hooks"]
    assert listing["broken"]["status"] == "failed"
    assert "ds01_dependency_that_is_not_installed" in listing["broken"]["error"]
    assert listing["whole-gpu-allocator"]["status"] == "disabled"


def test_ds01_plugins_table_and_plugin_cli_command(installed_dists, tmp_path):
    cfg = tmp_path / "ds01.yaml"
    cfg.write_text("{}\n")
    table = _cli(
        ["--config", str(cfg), "plugins"], ["ds01-sample-plugin"], installed=installed_dists
    )
    assert table.returncode == 0, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("sample"))
    assert "ds01-sample-plugin" in line and "1.2.3" in line and "active" in line
    hello = _cli(
        ["--config", str(cfg), "sample-hello"], ["ds01-sample-plugin"], installed=installed_dists
    )
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "hello from ds01-sample-plugin"


def test_ds01_plugins_exits_1_when_required_plugin_missing(installed_dists, tmp_path):
    cfg = tmp_path / "ds01.yaml"
    cfg.write_text("plugins:\n  required: [no-such-plugin]\n")
    result = _cli(["--config", str(cfg), "plugins"], [], installed=installed_dists)
    assert result.returncode == 1
    assert "no-such-plugin: required but not installed" in result.stderr


def test_a_disabled_builtin_takes_its_cycle_steps_with_it(tmp_path):
    """``ds01 plugins --cycle``: the steps of a disabled plugin are not in the cycle, and the
    steps the others provide keep their order."""
    from click.testing import CliRunner

    from ds01_core.transports.cli import cli

    def steps(disabled: list[str]) -> list[tuple[str, str]]:
        cfg = tmp_path / "ds01.yaml"
        cfg.write_text(json.dumps({"plugins": {"disabled": disabled}}))
        args = ["--config", str(cfg), "--no-plugins", "plugins", "--cycle", "--json"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return [(s["name"], s["provider"]) for s in json.loads(result.stdout)["steps"]]

    assert steps([]) == [
        ("detect", "core"),
        ("gpu-health", "core"),
        ("reconcile-allocations", "gpu-allocations"),
        ("owner-map", "gpu-allocations"),
        ("label-migration", "label-migration"),
        ("reconcile", "core"),
        ("enforce-limits", "core"),
        ("idle", "core"),
    ]
    assert steps(["gpu-allocations"]) == [
        ("detect", "core"),
        ("gpu-health", "core"),
        ("label-migration", "label-migration"),
        ("reconcile", "core"),
        ("enforce-limits", "core"),
        ("idle", "core"),
    ]
