"""ds01-mig as a plugin: found by entry point, configured through ``plugins.mig``, and the one
allocator that decides, through the plugin manager and through the core's allocation path."""

from __future__ import annotations

import importlib.metadata as md
import json
import tomllib
from pathlib import Path

import pytest

import ds01_mig
from ds01_core.domain.config import ConfigError, build_config
from ds01_core.domain.model import GpuRequest
from ds01_core.domain.state.allocations import AllocationRefused, Allocations
from ds01_core.framework.manager import EntryPointSource, PluginHost, make_plugin_host
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_mig.config import MigConfig

PLUGIN_DIR = Path(__file__).resolve().parents[3] / "plugins" / "mig"  # the source, not the install
MIG_REQUEST = GpuRequest(user="alice", container="train", mig_profile="2g.20gb")


def mig_host() -> PluginHost:
    return make_plugin_host(extra=[("mig", ds01_mig)], load_entry_points=False)


def runtime_for(host: PluginHost, data: dict) -> Runtime:
    return Runtime(build_config(data, sections=host.config_sections()), host)


# -- the distribution ---------------------------------------------------------------------------


def test_distribution_declares_its_entry_point():
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ds01-mig"
    assert project["dependencies"] == ["ds01>=0.1,<0.2"]
    assert project["entry-points"]["ds01"] == {"mig": "ds01_mig"}


def test_installed_plugin_is_found_by_entry_point():
    found = [ep for ep in md.entry_points(group="ds01") if ep.name == "mig"]
    host = make_plugin_host(entry_points=EntryPointSource(lambda: found))
    record = host.record("mig")
    assert record is not None, "pip install -e plugins/mig --no-deps --no-build-isolation"
    assert (record.status, record.distribution, record.version) == ("active", "ds01-mig", "0.1.0")
    assert {"allocate_gpu", "plugin_config_sections"} <= set(record.hooks)


# -- configuration ------------------------------------------------------------------------------


def test_config_section_is_declared():
    assert ds01_mig.plugin_config_sections() == {"mig": MigConfig}
    assert mig_host().config_sections() == {"mig": MigConfig}


def test_config_section_defaults_when_absent():
    config = build_config({}, sections={"mig": MigConfig})
    assert config.plugins.sections["mig"] == MigConfig(strategy="pack", prefer="mig")


def test_config_section_is_validated():
    with pytest.raises(ConfigError) as info:
        build_config(
            {"plugins": {"mig": {"strategy": "random", "prefr": "mig"}}},
            sections={"mig": MigConfig},
        )
    problems = [str(p) for p in info.value.problems]
    assert "plugins.mig.strategy: expected one of 'pack', 'spread', got 'random'" in problems
    assert any(p.startswith("plugins.mig.prefr: unknown key") for p in problems)


# -- through the plugin manager -----------------------------------------------------------------


def test_mig_plugin_decides_instead_of_the_builtin_allocator(slots, limits):
    builtin_only = make_plugin_host(load_entry_points=False)
    refused = builtin_only.hooks.allocate_gpu(None, MIG_REQUEST, slots, slots, [], limits())
    assert "no MIG-aware allocator is active" in refused.refused

    decision = mig_host().hooks.allocate_gpu(None, MIG_REQUEST, slots, slots, [], limits())
    assert decision.granted
    assert [s.profile for s in decision.slots] == ["2g.20gb"]


def test_disabling_the_plugin_brings_the_builtin_back(slots, limits):
    host = make_plugin_host(extra=[("mig", ds01_mig)], disabled=["mig"], load_entry_points=False)
    decision = host.hooks.allocate_gpu(None, MIG_REQUEST, slots, slots, [], limits())
    assert not decision.granted


def test_hook_reads_the_runtimes_section_and_enforcement_mode(slots, slot, limits, alloc):
    host = mig_host()
    free = [s for s in slots if s.slot_id != "5.2"]  # GPU 5 busy
    spread = runtime_for(host, {"plugins": {"mig": {"strategy": "spread"}}})
    pack = runtime_for(host, {})
    for runtime, gpu in ((pack, 5), (spread, 7)):
        decision = host.hooks.allocate_gpu(runtime, MIG_REQUEST, free, slots, [], limits())
        assert [s.gpu_index for s in decision.slots] == [gpu]

    held = [alloc("ctr-a", [slot("0")])]
    over = limits(max_gpu_equivalents=1.0)
    hard = host.hooks.allocate_gpu(pack, MIG_REQUEST, slots, slots, held, over)
    soft_runtime = runtime_for(host, {"enforcement": {"mode": "soft"}})
    soft = host.hooks.allocate_gpu(soft_runtime, MIG_REQUEST, slots, slots, held, over)
    assert hard.refused.startswith("GPU quota: 1.0 of 1.0")
    assert soft.granted and soft.warning == f"soft limit exceeded: {hard.refused}"


def test_hook_uses_defaults_when_the_config_has_no_mig_section(slots, limits):
    host = mig_host()
    runtime = Runtime(build_config({}), host)  # loaded before the plugin was registered
    decision = host.hooks.allocate_gpu(runtime, MIG_REQUEST, slots, slots, [], limits())
    assert [s.slot_id for s in decision.slots] == ["5.3"]


# -- through the core's allocation transaction --------------------------------------------------


@pytest.fixture
def mig_runtime(tmp_config):
    """``mig_runtime(extra, quota=1.0)``: a runtime over the simulated host with ds01-mig as
    its only allocator (the machine's other plugins left out)."""
    made: list[Runtime] = []

    def make(extra: dict | None = None, quota: float = 1.0) -> Runtime:
        limits = {"defaults": {"max_gpu_equivalents": quota, "max_gpu_slots_per_container": 2}}
        path = tmp_config({"limits": limits, **(extra or {})})
        made.append(load_runtime(str(path), no_plugins=True, extra_plugins=(("mig", ds01_mig),)))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


def test_core_allocation_records_mig_slots_and_refuses_over_quota(mig_runtime):
    runtime = mig_runtime({"plugins": {"mig": {"strategy": "spread"}}}, quota=0.5)
    allocations = Allocations(runtime)
    first = allocations.allocate(GpuRequest("alice", "ctr-a", mig_profile="1g.10gb"))
    second = allocations.allocate(GpuRequest("alice", "ctr-b", count=2, mig_profile="1g.10gb"))
    assert [s.slot_id for s in first.slots] == ["4.7"]  # GPUs 4 and 7 tie: the lower index
    assert [s.slot_id for s in second.slots] == ["7.13", "4.8"]  # the less used GPU first
    with pytest.raises(AllocationRefused) as info:
        allocations.allocate(GpuRequest("alice", "ctr-c", mig_profile="2g.20gb"))
    assert str(info.value) == (
        "GPU quota: 0.43 of 0.5 GPU-equivalents in use (ctr-a 0.14, ctr-b 0.29); "
        "a 2g.20gb needs 0.29"
    )
    events = [
        json.loads(line) for line in runtime.config.paths.event_log_path.read_text().splitlines()
    ]
    assert [e["event_type"] for e in events] == ["gpu.allocated", "gpu.allocated", "gpu.rejected"]


def test_core_allocation_in_soft_mode_carries_the_warning(mig_runtime):
    runtime = mig_runtime({"enforcement": {"mode": "soft"}})
    allocations = Allocations(runtime)
    allocations.allocate(GpuRequest("alice", "ctr-a", full_gpu=True))
    granted = allocations.allocate(GpuRequest("alice", "ctr-b", mig_profile="3g.40gb"))
    assert granted.warning == (
        "soft limit exceeded: GPU quota: 1.0 of 1.0 GPU-equivalents in use (ctr-a 1.0); "
        "a 3g.40gb needs 0.43"
    )
