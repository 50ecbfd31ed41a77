"""What the mutation check mutates and with which tests: the modules, and the named mutations.

Everything is found by *source text*, never by line number: a module by its path or by the
functions it holds, a named mutation by its function's name and a snippet inside it. Code may
move between modules (``lifecycle`` is being split) and the check still finds it; a snippet that
is no longer there is an error, never a silent skip.
"""

from __future__ import annotations

from dataclasses import dataclass

ALLOCATION_TESTS = (
    "tests/core/test_allocation_quota.py",
    "tests/core/test_allocation_rules.py",
    "tests/plugins/mig/test_mig_plugin.py",
)
POLICY_TESTS = ("tests/core/test_lifecycle_policy.py", "tests/core/test_policy_thresholds.py")
IDLE_TESTS = (
    "tests/core/test_lifecycle_policy.py",
    "tests/core/test_idle*.py",
    "tests/core/test_gpu_gpm.py",
)
EVENT_LOG_TESTS = ("tests/core/test_events.py", "tests/core/test_cli_events.py")
HEALTH_TESTS = ("tests/core/test_gpu_health_drain.py", "tests/core/test_gpu_health_faults.py")
GATEWAY_POLICY_TESTS = (
    "tests/core/test_gateway_create_policy.py",
    "tests/core/test_gateway_fuzz.py",
)


@dataclass(frozen=True)
class Target:
    """A region to mutate with every operator: a whole module (``path``), or the named
    functions wherever they now live (``functions``, searched for in ``ds01_core``)."""

    name: str
    tests: tuple[str, ...]
    path: str | None = None
    functions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Named:
    """A mutation the issue names: in function ``function``, ``find`` becomes ``replace``.
    It must fail at least one of ``tests``."""

    name: str
    function: str
    find: str
    replace: str
    tests: tuple[str, ...]


TARGETS = (
    Target("policy", POLICY_TESTS, path="ds01_core/domain/policy.py"),
    Target(
        "allocation",
        ALLOCATION_TESTS,
        functions=("quota_problem", "check_decision", "allocate", "reserve"),
    ),
    Target("idle", IDLE_TESTS, functions=("signals", "update_streak", "gpu_active")),
    Target("event-log", EVENT_LOG_TESTS, path="ds01_core/domain/audit_log.py"),
)

NAMED = (
    Named(
        "core quota check off (allocation_rules.check_decision)",
        "check_decision",
        'return quota_problem(limits, mine, new, "this request needs")',
        "return None",
        ALLOCATION_TESTS,
    ),
    Named(
        "quota check off on restart after the hold expired (Allocations.reserve)",
        "reserve",
        'if problem and self.runtime.config.enforcement.mode == "hard":',
        "if False:",
        ALLOCATION_TESTS,
    ),
    Named(
        "idle CPU threshold >= becomes >",
        "signals",
        "act.cpu_cores >= policy.cpu_threshold",
        "act.cpu_cores > policy.cpu_threshold",
        IDLE_TESTS,
    ),
    Named(
        "idle network threshold >= becomes >",
        "signals",
        "act.net_bytes_per_s >= policy.network_threshold",
        "act.net_bytes_per_s > policy.network_threshold",
        IDLE_TESTS,
    ),
    Named(
        "idle GPU utilisation threshold >= becomes >",
        "gpu_active",
        "slot.utilization >= utilization_threshold",
        "slot.utilization > utilization_threshold",
        IDLE_TESTS,
    ),
    Named(
        "no known signal counts as idle",
        "update_streak",
        "if active or not known or gpu_unknown:",
        "if active or gpu_unknown:",
        IDLE_TESTS,
    ),
    Named(
        "an unreadable GPU signal counts as idle (issue 14: unknown is not idle)",
        "update_streak",
        "if active or not known or gpu_unknown:",
        "if active or not known:",
        IDLE_TESTS,
    ),
    Named(
        "a drained GPU takes new work (issue 15: drain unhealthy GPUs)",
        "undrained",
        "kept = [s for s in free if not is_drained(s, out)]",
        "kept = list(free)",
        HEALTH_TESTS,
    ),
    Named(
        "gateway: privileged containers no longer refused",
        "refusals",
        'found.append("privileged containers are not allowed")',
        "pass",
        GATEWAY_POLICY_TESTS,
    ),
)
