"""A user's idle thresholds reach the policy the idle step judges by: GPU, CPU and network,
each from the user's limits (found surviving by the mutation check: only the CPU one was
pinned down)."""

from __future__ import annotations

from ds01_core.domain.model import Workload
from ds01_core.domain.policy import policy_for
from ds01_core.framework.runtime import load_runtime


def test_each_idle_threshold_comes_from_the_users_limits(tmp_config):
    config = tmp_config(
        {
            "limits": {
                "groups": {
                    "student": {
                        "members": ["sam"],
                        "gpu_idle_threshold": 12,
                        "cpu_idle_threshold": 0.3,
                        "network_idle_threshold": 9999,
                    }
                }
            }
        }
    )
    runtime = load_runtime(str(config), no_plugins=True)
    sam = Workload("container", "c1", "c1", "docker", "sam", "label", "running")
    policy = policy_for(runtime, sam, 1.0)
    assert (policy.gpu_threshold, policy.cpu_threshold, policy.network_threshold) == (
        12,
        0.3,
        9999,
    )
    ann = Workload("container", "c2", "c2", "docker", "ann", "label", "running")
    defaults = policy_for(runtime, ann, 1.0)
    assert (defaults.gpu_threshold, defaults.cpu_threshold, defaults.network_threshold) == (
        5.0,
        0.05,
        2048,
    )
