"""Lifecycle policy: origin policy, owner limits on top, and the high-demand factor."""

from __future__ import annotations

import yaml

from ds01_core.allocation import Allocations
from ds01_core.lifecycle import high_demand_factor, policy_for
from ds01_core.model import GpuRequest, Workload
from ds01_core.runtime import load_runtime


def test_policy_and_high_demand(tmp_config, tmp_path):
    topology = tmp_path / "two-gpus.yaml"
    topology.write_text(
        yaml.safe_dump(
            {
                "name": "two",
                "default_model": "NVIDIA A100-SXM4-80GB",
                "models": {
                    "NVIDIA A100-SXM4-80GB": {
                        "memory": "81920MiB",
                        "profiles": {"7g.80gb": {"id": 4, "slices": 7, "memory": "80896MiB"}},
                    }
                },
                "gpus": [{}, {}],
            }
        )
    )
    config = tmp_config(
        {
            "gpu": {"simulated": {"topology": str(topology)}},
            "lifecycle": {
                "high_demand_share": 0.5,
                "high_demand_factor": 0.25,
                "origins": {"devcontainer": {"idle_timeout": "4h", "stop_grace": "10s"}},
            },
            "limits": {
                "groups": {
                    "student": {"members": ["sam"], "idle_timeout": "1h", "cpu_idle_threshold": 0.5}
                }
            },
            "plugins": {"disabled": ["mig"]},
        }
    )
    runtime = load_runtime(str(config))
    dev = Workload("container", "c1", "c1", "devcontainer", "ann", "label", "running")
    policy = policy_for(runtime, dev, 1.0)
    assert (policy.idle_timeout, policy.stop_grace, policy.cpu_threshold) == (4 * 3600, 10, 0.05)
    student = Workload("container", "c2", "c2", "devcontainer", "sam", "label", "running")
    policy = policy_for(runtime, student, 1.0)
    assert (policy.idle_timeout, policy.cpu_threshold) == (3600, 0.5)  # the group's, on top

    assert high_demand_factor(runtime) == 1.0
    granted = Allocations(runtime).allocate(GpuRequest(user="ann", container="big"))
    assert high_demand_factor(runtime) == 0.25  # half of the GPU-equivalents allocated
    Allocations(runtime).release([granted.allocation.id], "test")
    assert high_demand_factor(runtime) == 1.0
