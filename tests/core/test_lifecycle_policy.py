"""Lifecycle policy: the owner's limits, origins that can only tighten them, ``never``, the
high-demand factor, ``config show --origin`` and an example configuration without dead lines."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ds01_core.domain.config import ORIGINS, ConfigError, build_config
from ds01_core.domain.container_facts import classify_origin
from ds01_core.domain.limits import resolve_limits
from ds01_core.domain.model import GpuRequest, Workload
from ds01_core.domain.policy import CycleLimits, high_demand_factor, policy_for, resolve_policy
from ds01_core.domain.state.allocations import Allocations
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.manager import make_plugin_host
from ds01_core.framework.runtime import Runtime, load_runtime
from ds01_core.transports.cli import cli

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ds01.yaml"
PLUGIN_SECTIONS = ("mig", "cgroups", "notify", "ldap", "diskquota")


def workload(name: str, labels: dict[str, str], owner: str = "ann") -> Workload:
    """A running container as detection sees it: its origin from its own name and labels."""
    origin = classify_origin(labels, name)
    return Workload("container", name, name, origin, owner, "label", "running", labels=labels)


# what a user can put on a container they create (the gateway drops ds01.* labels)
CLAIMED = {
    "vsc- name": ("vsc-project-1a2b3c", {}),
    "devcontainer label": ("box", {"devcontainer.local_folder": "/home/ann/p"}),
    "compose label": ("web-1", {"com.docker.compose.project": "p"}),
}


@pytest.mark.parametrize("claim", sorted(CLAIMED))
def test_a_claimed_origin_gets_the_ordinary_limits_with_the_built_in_defaults(tmp_config, claim):
    runtime = load_runtime(str(tmp_config()))
    ordinary = policy_for(runtime, workload("plain", {}), 1.0)
    assert (ordinary.idle_timeout, ordinary.max_runtime) == (2 * 3600, 7 * 86400)
    name, labels = CLAIMED[claim]
    claimed = policy_for(runtime, workload(name, labels), 1.0)
    assert claimed.idle_timeout == ordinary.idle_timeout
    assert claimed.max_runtime == ordinary.max_runtime
    assert claimed.created_timeout == ordinary.created_timeout == 86400
    assert claimed.hold_after_stop == ordinary.hold_after_stop == 7 * 86400


@pytest.mark.parametrize("claim", sorted(CLAIMED))
def test_an_origin_policy_can_tighten_but_never_loosen(tmp_config, claim):
    lenient = {
        "idle_timeout": "never",
        "max_runtime": "30d",
        "stop_grace": "10m",
        "created_timeout": "never",
        "container_hold_after_stop": "never",
    }
    config = tmp_config(
        {
            "limits": {"defaults": {"idle_timeout": "1h", "max_runtime": "3d"}},
            "lifecycle": {"origins": {o: lenient for o in ("devcontainer", "compose", "docker")}},
        }
    )
    runtime = load_runtime(str(config))
    name, labels = CLAIMED[claim]
    policy = policy_for(runtime, workload(name, labels), 1.0)
    assert (policy.idle_timeout, policy.max_runtime, policy.stop_grace) == (3600, 3 * 86400, 30)
    assert (policy.created_timeout, policy.hold_after_stop) == (86400, 7 * 86400)

    strict = tmp_config({"lifecycle": {"origins": {"devcontainer": {"max_runtime": "1d"}}}})
    runtime = load_runtime(str(strict))
    dev = policy_for(runtime, workload("vsc-x", {}), 1.0)
    assert (dev.idle_timeout, dev.max_runtime) == (2 * 3600, 86400)  # only the shorter one
    assert policy_for(runtime, workload("plain", {}), 1.0).max_runtime == 7 * 86400


def test_never_means_no_limit_at_any_level(tmp_config):
    config = tmp_config(
        {
            "limits": {
                "groups": {"staff": {"members": ["sam"], "idle_timeout": "never"}},
                "users": {"sam": {"max_runtime": "never"}},
            }
        }
    )
    runtime = load_runtime(str(config))
    policy = policy_for(runtime, workload("plain", {}, owner="sam"), 1.0)
    assert (policy.idle_timeout, policy.max_runtime) == (None, None)
    # an origin can still set a limit where the user has none
    config = tmp_config(
        {
            "limits": {"defaults": {"idle_timeout": "never"}},
            "lifecycle": {"origins": {"compose": {"idle_timeout": "20m"}}},
        }
    )
    runtime = load_runtime(str(config))
    assert policy_for(
        runtime, workload("web-1", CLAIMED["compose label"][1]), 1.0
    ).idle_timeout == (1200)
    assert policy_for(runtime, workload("plain", {}), 1.0).idle_timeout is None


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(data, now=NOW)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    "where",
    [
        ("limits", "defaults"),
        ("limits", "groups", "g"),
        ("limits", "users", "u"),
        ("lifecycle", "origins", "compose"),
    ],
)
@pytest.mark.parametrize("key", ["idle_timeout", "max_runtime"])
def test_null_and_zero_are_refused_with_a_message_naming_never(where, key):
    def at(value: Any) -> dict:
        data: dict = {key: value}
        for part in reversed(where):
            data = {part: data}
        return data

    path = ".".join((*where, key))
    (null,) = problems_of(at(None))
    assert null.startswith(f"{path}: null is not a time limit: write 'never' for no limit")
    (zero,) = problems_of(at(0))
    assert zero.startswith(f"{path}: must be greater than 0, got 0s (write 'never' for no limit")
    assert "null" not in zero


def test_never_is_only_for_limits():
    (problem,) = problems_of({"lifecycle": {"interval": "never"}})
    assert problem.startswith("lifecycle.interval: 'never' is not allowed here")
    (problem,) = problems_of({"lifecycle": {"created_timeout": None}})
    assert problem.startswith("lifecycle.created_timeout: null is not a time limit: write 'never'")
    (problem,) = problems_of({"limits": {"defaults": {"max_runtime": float("inf")}}})
    assert (
        problem == "limits.defaults.max_runtime: expected a duration like '30m' or 'never', got inf"
    )
    config = build_config({"lifecycle": {"container_hold_after_stop": "never"}}, now=NOW)
    assert str(config.lifecycle.container_hold_after_stop) == "never"


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
    # 4h is more lenient than the built-in 2h: ignored; the shorter stop grace applies
    assert (policy.idle_timeout, policy.stop_grace, policy.cpu_threshold) == (2 * 3600, 10, 0.05)
    student = Workload("container", "c2", "c2", "devcontainer", "sam", "label", "running")
    policy = policy_for(runtime, student, 1.0)
    assert (policy.idle_timeout, policy.cpu_threshold) == (3600, 0.5)  # the group's

    assert high_demand_factor(runtime) == 1.0
    granted = Allocations(runtime).allocate(GpuRequest(user="ann", container="big"))
    assert high_demand_factor(runtime) == 0.25  # half of the GPU-equivalents allocated
    Allocations(runtime).release([granted.allocation.id], "test")
    assert high_demand_factor(runtime) == 1.0


def test_config_show_origin_gives_the_policy_that_applies_and_its_sources(tmp_config):
    config = tmp_config(
        {
            "limits": {
                "defaults": {"idle_timeout": "3h"},
                "groups": {"student": {"members": ["sam"], "max_runtime": "2d"}},
                "overrides": [
                    {
                        "user": "sam",
                        "values": {"idle_timeout": "never"},
                        "expires": "2099-01-01",
                        "reason": "demo",
                        "approved_by": "prof",
                    }
                ],
            },
            "lifecycle": {
                "created_timeout": "12h",
                "origins": {"devcontainer": {"max_runtime": "1d", "idle_timeout": "5h"}},
            },
        }
    )

    def show(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), "config", "show", *args])
        assert result.exit_code == 0, result.output
        return result.output

    data = json.loads(show("--user", "sam", "--origin", "devcontainer", "--json"))
    policy = {key: (row["value"], row["source"]) for key, row in data["policy"].items()}
    assert policy["idle_timeout"] == ("5h", "origin devcontainer")  # tighter than never
    assert policy["idle_timeout"] != data["limits"]["idle_timeout"]["value"]
    assert data["limits"]["idle_timeout"]["value"] == "never"
    assert data["limits"]["idle_timeout"]["source"].startswith("override until 2099-01-01")
    assert policy["max_runtime"] == ("1d", "origin devcontainer")
    assert policy["created_timeout"] == ("12h", "lifecycle.created_timeout")
    assert policy["cpu_idle_threshold"] == ("0.05", "built-in")
    assert data["policy"]["idle_timeout"]["seconds"] == 5 * 3600

    docker = json.loads(show("--user", "sam", "--origin", "docker", "--json"))["policy"]
    assert (docker["idle_timeout"]["value"], docker["idle_timeout"]["seconds"]) == ("never", None)
    assert docker["max_runtime"]["value"] == "2d"
    assert docker["max_runtime"]["source"] == "group student"
    plain = json.loads(show("--user", "ann", "--origin", "docker", "--json"))["policy"]
    assert plain["idle_timeout"]["value"] == "3h" and plain["idle_timeout"]["source"] == "defaults"
    assert plain["max_runtime"]["value"] == "1w" and plain["max_runtime"]["source"] == "built-in"

    text = show("--user", "sam", "--origin", "devcontainer")
    assert "lifecycle policy for sam's devcontainer containers" in text
    line = next(
        x
        for x in text.splitlines()[
            text.splitlines().index("lifecycle policy for sam's devcontainer containers:") :
        ]
        if x.startswith("idle_timeout")
    )
    assert line.split()[1:] == ["5h", "origin", "devcontainer"]
    refused = CliRunner().invoke(
        cli, ["--config", str(config), "config", "show", "--origin", "compose"]
    )
    assert refused.exit_code == 2 and "--origin needs --user" in refused.output


# -- the example configuration has no dead lines ------------------------------------------------


def leaves(data: Any, path: tuple = ()) -> list[tuple]:
    """Every key the file sets, as a path; a list's items are leaves unless they are mappings
    (the overrides), whose keys are followed."""
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in leaves(value, (*path, key))] or [path]
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return [p for i, item in enumerate(data) for p in leaves(item, (*path, i))]
    return [path]


def without(data: dict, path: tuple) -> dict:
    copied = copy.deepcopy(data)
    node = copied
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return copied


def effect(data: dict) -> Any:
    """What a configuration decides: for every user it names (and one it does not) and every
    origin, the limits and the lifecycle policy; and every other setting. None: refused."""
    try:
        config = build_config(data, now=NOW, ignore_sections=PLUGIN_SECTIONS)
    except ConfigError:
        return None
    from ds01_core.domain.config import unstructure

    limits = config.limits
    users = {"somebody-else", *limits.users, *(o.user for o in limits.overrides)}
    users |= {m for group in limits.groups.values() for m in group.members}
    decided = {}
    for user in sorted(users):
        resolved = resolve_limits(config, user, now=NOW)
        decided[user] = {k: v.value for k, v in resolved.values.items()}
        for origin in ORIGINS:
            policy = resolve_policy(config, resolved, origin)
            decided[f"{user}/{origin}"] = {k: v.value for k, v in policy.items()}
    rest = unstructure(config)
    rest.pop("limits")
    rest["lifecycle"].pop("origins")
    return decided, rest


def test_every_line_of_the_example_has_an_effect():
    data = yaml.safe_load(EXAMPLE.read_text())
    whole = effect(data)
    assert whole is not None
    dead = [".".join(map(str, p)) for p in leaves(data) if effect(without(data, p)) == whole]
    assert dead == [], (
        f"{EXAMPLE.name}: these lines change nothing (they restate a default or are overridden "
        f"by a stricter value): comment them out or change them: {dead}"
    )


def test_the_dead_line_check_finds_a_dead_line():
    data = yaml.safe_load(EXAMPLE.read_text())
    data["lifecycle"]["origins"]["docker"] = {"idle_timeout": "5h"}  # looser than every limit
    data["limits"]["groups"]["student"]["memory"] = "64g"  # the same as the defaults
    whole = effect(data)
    assert effect(without(data, ("lifecycle", "origins", "docker", "idle_timeout"))) == whole
    assert effect(without(data, ("limits", "groups", "student", "memory"))) == whole
    assert effect(without(data, ("limits", "groups", "student", "max_runtime"))) != whole


def test_an_origin_equal_to_the_limit_leaves_the_limit_as_the_source(tmp_config):
    """Only a strictly tighter origin value takes over (and is named as the source)."""
    config = tmp_config(
        {
            "limits": {"defaults": {"max_runtime": "1d"}},
            "lifecycle": {"origins": {"devcontainer": {"max_runtime": "1d"}}},
        }
    )
    runtime = load_runtime(str(config))
    limits = resolve_limits(runtime.config, "sam")
    policy = resolve_policy(runtime.config, limits, "devcontainer")
    assert policy["max_runtime"].seconds == 86400
    assert policy["max_runtime"].source == "defaults"


def test_each_users_limits_are_resolved_once_per_cycle_limits(tmp_path):
    counted: list[str] = []

    class Counting:
        @hookimpl
        def user_group(self, runtime: Runtime, user: str) -> str | None:
            counted.append(user)
            return None

    host = make_plugin_host(extra=(("counting", Counting()),), load_entry_points=False)
    paths = {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")}
    data = {"paths": paths, "gpu": {"backend": "simulated"}}
    runtime = Runtime(build_config(data, sections=host.config_sections()), host)
    limits = CycleLimits(runtime)
    first = limits("sam")
    assert limits("sam") is first and counted == ["sam"]
    assert limits("ann").user == "ann" and counted == ["sam", "ann"]
    assert CycleLimits(runtime)("sam") == first and counted == ["sam", "ann", "sam"]
