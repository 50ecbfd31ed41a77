"""Configuration: every kind of bad file is refused whole, each problem named by its path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ds01_core.domain.config import ConfigError, build_config, load_config, unstructure
from ds01_core.domain.units import ByteSize, Duration

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ds01.yaml"


def problems_of(data: dict, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(data, now=NOW, **kw)
    return [str(p) for p in info.value.problems]


def test_empty_file_gives_defaults():
    config = build_config({}, now=NOW)
    assert config.paths.event_log_path == Path("/var/log/ds01/events.jsonl")
    assert config.gpu.backend == "auto"
    assert config.lifecycle.interval == 30
    assert config.lifecycle.origins == {}  # no origin is treated differently by default


def test_wrong_type_names_path_expected_and_got():
    assert problems_of({"limits": {"groups": {"student": {"max_gpu_equivalents": "two"}}}}) == [
        "limits.groups.student.max_gpu_equivalents: expected a number, got 'two'"
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"limits": {"defaults": {"allow_full_gpu": "yes"}}},
            "limits.defaults.allow_full_gpu: expected true or false, got 'yes'",
        ),
        (
            {"limits": {"defaults": {"pids_limit": 1.5}}},
            "limits.defaults.pids_limit: expected a whole number, got 1.5",
        ),
        (
            {"limits": {"defaults": {"max_cpus": True}}},
            "limits.defaults.max_cpus: expected a number, got True",
        ),
        ({"limits": {"groups": []}}, "limits.groups: expected a mapping, got a list"),
        ({"paths": {"state_dir": 5}}, "paths.state_dir: expected text, got 5"),
        (
            {"gpu": {"backend": "cuda"}},
            "gpu.backend: expected one of 'auto', 'nvml', 'simulated', got 'cuda'",
        ),
    ],
)
def test_wrong_types(data, expected):
    assert problems_of(data) == [expected]


def test_an_unquoted_date_is_the_text_the_admin_typed(tmp_path):
    """YAML reads ``2026-09-28`` as a date; where text is expected it is that text (a date and
    time is still refused: it is not what anyone types for a name)."""
    path = tmp_path / "ds01.yaml"
    path.write_text("paths:\n  state_dir: /srv/2026-09-28\n  log_dir: 2026-09-28\n")
    with pytest.raises(ConfigError) as refused:
        load_config(str(path), now=NOW)
    assert "paths.log_dir: must be an absolute path (starting with /), got '2026-09-28'" in str(
        refused.value
    )
    assert problems_of({"paths": {"state_dir": dt.datetime(2026, 9, 28, 10)}}) == [
        "paths.state_dir: expected text, got datetime.datetime(2026, 9, 28, 10, 0)"
    ]


def test_unknown_keys_at_every_level():
    assert problems_of(
        {"limit": {}, "limits": {"defaults": {"max_gpus": 1}}, "gpu": {"simulated": {"gpus": 8}}}
    ) == [
        "gpu.simulated.gpus: unknown key (check the spelling; see docs/config.md)",
        "limits.defaults.max_gpus: unknown key (check the spelling; see docs/config.md)",
        "limit: unknown key (check the spelling; see docs/config.md)",
    ]


@pytest.mark.parametrize("value", [0, -1, -0.5])
def test_zero_or_negative_quota(value):
    assert problems_of({"limits": {"users": {"bob": {"max_gpu_equivalents": value}}}}) == [
        f"limits.users.bob.max_gpu_equivalents: must be greater than 0, got {float(value)!r} "
        "(leave the key out to keep the value from the level below)"
    ]


def test_unknown_group():
    assert problems_of(
        {"limits": {"groups": {"student": {}}, "users": {"bob": {"group": "staff"}}}}
    ) == ["limits.users.bob.group: unknown group 'staff' (groups: student)"]


def test_user_in_two_groups():
    data = {
        "limits": {
            "groups": {
                "student": {"members": ["alice", "bob"]},
                "faculty": {"members": ["Bob@EXAMPLE.ORG"]},
            }
        }
    }
    assert problems_of(data) == [
        "limits.groups.faculty.members[0]: user 'bob' is already a member of group 'student'; "
        "a user belongs to one group"
    ]


def test_user_placed_in_a_group_other_than_their_membership():
    data = {
        "limits": {
            "groups": {"student": {"members": ["bob"]}, "faculty": {}},
            "users": {"bob": {"group": "faculty"}},
        }
    }
    assert problems_of(data) == [
        "limits.users.bob.group: user 'bob' is listed as a member of group 'student' but placed "
        "in 'faculty'; a user belongs to one group"
    ]


def _override(**changes):
    base = {
        "user": "alice",
        "values": {"max_gpu_equivalents": 3},
        "expires": "2026-12-01",
        "reason": "thesis deadline",
        "approved_by": "prof",
    }
    base.update(changes)
    return {"limits": {"overrides": [base]}}


def test_override_expired():
    assert problems_of(_override(expires="2026-11-01T08:00:00Z")) == [
        "limits.overrides[0].expires: expired on 2026-11-01T08:00:00Z; remove the override or "
        "extend it"
    ]


def test_override_malformed_date():
    assert problems_of(_override(expires="next friday")) == [
        "limits.overrides[0].expires: expected a date like 2026-12-31 or 2026-12-31T18:00:00Z, "
        "got 'next friday'"
    ]


def test_override_missing_reason_and_empty_values():
    base = _override(values={})
    del base["limits"]["overrides"][0]["reason"]
    problems = problems_of(base)
    assert problems == ["limits.overrides[0].reason: required but missing"]
    assert problems_of(_override(values={})) == ["limits.overrides[0].values: sets no limit"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"lifecycle": {"interval": "soon"}},
            "lifecycle.interval: expected a duration like '45s', '30m', '1.5h', '2d' or '1h30m', "
            "got 'soon'",
        ),
        (
            {"lifecycle": {"origins": {"ds01": {"idle_timeout": "-5m"}}}},
            "lifecycle.origins.ds01.idle_timeout: expected a duration like '45s', '30m', '1.5h', "
            "'2d' or '1h30m', got '-5m'",
        ),
        (
            {"limits": {"defaults": {"memory": "32 gigs"}}},
            "limits.defaults.memory: expected a size like '512m', '32g' or '1.5GiB', got '32 gigs'",
        ),
        (
            {"limits": {"defaults": {"shm_size": -1}}},
            "limits.defaults.shm_size: a size cannot be negative, got -1",
        ),
    ],
)
def test_unparsable_durations_and_sizes(data, expected):
    assert problems_of(data) == [expected]


def test_all_problems_reported_together():
    problems = problems_of(
        {
            "limits": {
                "defaults": {"memory": "lots", "max_cpus": "many"},
                "groups": {"student": {"max_gpu_equivalents": "two"}},
            },
            "lifecycle": {"interval": "often"},
            "bogus": 1,
        }
    )
    assert len(problems) == 5
    assert {p.split(":")[0] for p in problems} == {
        "limits.defaults.memory",
        "limits.defaults.max_cpus",
        "limits.groups.student.max_gpu_equivalents",
        "lifecycle.interval",
        "bogus",
    }


def test_unknown_origin_and_unknown_plugin_section():
    assert problems_of({"lifecycle": {"origins": {"slurm": {}}}, "plugins": {"mig": {}}}) == [
        "plugins.mig: no installed plugin reads this section (sections known: none)",
        "lifecycle.origins.slurm: unknown origin (origins: ds01, devcontainer, compose, docker, "
        "unknown)",
    ]


def test_required_and_disabled_at_once():
    assert problems_of({"plugins": {"required": ["x"], "disabled": ["x"]}}) == [
        "plugins.required: 'x' is both required and disabled"
    ]


def test_human_units_parse_and_print_back():
    config = build_config(
        {
            "limits": {
                "defaults": {"memory": "32g", "shm_size": "1.5GiB", "idle_timeout": "1h30m"}
            },
            "lifecycle": {"interval": "1.5m"},
        },
        now=NOW,
    )
    defaults = config.limits.defaults
    assert defaults.memory == 32 * 1024**3 and isinstance(defaults.memory, ByteSize)
    assert defaults.shm_size == int(1.5 * 1024**3)
    assert defaults.idle_timeout == 5400 and isinstance(defaults.idle_timeout, Duration)
    assert config.lifecycle.interval == 90
    data = unstructure(config)
    assert data["limits"]["defaults"]["memory"] == "32g"
    assert data["limits"]["defaults"]["idle_timeout"] == "1.5h"


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits:\n  groups: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top, got 'just text'"):
        load_config(str(scalar))


def test_error_message_names_the_file(tmp_path):
    path = tmp_path / "ds01.yaml"
    path.write_text("limits:\n  defaults:\n    max_gpu_equivalents: two\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), now=NOW)
    assert str(info.value).splitlines() == [
        f"{path}: 1 problem(s), configuration refused:",
        "  limits.defaults.max_gpu_equivalents: expected a number, got 'two'",
    ]


def test_example_config_is_valid_and_complete():
    config = load_config(
        str(EXAMPLE), now=NOW, ignore_sections=("mig", "cgroups", "notify", "ldap")
    )
    assert config.limits.groups, "the example should show groups"
    assert config.limits.overrides, "the example should show an override"
    text = EXAMPLE.read_text()
    for key in (
        "max_gpu_equivalents",
        "max_gpu_slots_per_container",
        "allow_full_gpu",
        "max_containers_per_user",
        "max_cpus",
        "memory",
        "shm_size",
        "pids_limit",
        "idle_timeout",
        "max_runtime",
        "stop_grace",
        "backend",
        "state_dir",
    ):
        assert f"{key}:" in text, f"examples/ds01.yaml does not show {key}"


def test_every_config_key_is_documented():
    from ds01_core.domain import config as cfg

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    classes = [
        cfg.Config,
        cfg.PathsConfig,
        cfg.GpuConfig,
        cfg.SimulatedGpuConfig,
        cfg.HealthConfig,
        cfg.DetectionConfig,
        cfg.EnforcementConfig,
        cfg.AllocationConfig,
        cfg.LimitSet,
        cfg.GroupLimits,
        cfg.UserLimits,
        cfg.Override,
        cfg.LimitsConfig,
        cfg.OriginPolicy,
        cfg.LifecycleConfig,
        cfg.PluginsConfig,
    ]
    undocumented = set()
    for cls in classes:
        for field in attrs_fields(cls):
            if field in {"source", "sections"}:
                continue
            if (
                f"`{field}`" not in doc
                and f"`{field}." not in doc
                and f".{field}`" not in doc
                and f".{field}." not in doc
            ):
                undocumented.add(f"{cls.__name__}.{field}")
    assert not undocumented, f"not in docs/config.md: {sorted(undocumented)}"


def attrs_fields(cls) -> list[str]:
    import attrs

    return [f.name for f in attrs.fields(cls)]


def test_a_plugin_section_reports_its_own_cross_field_problems_by_path():
    import attrs

    @attrs.define
    class Section:
        servers: list[str] = attrs.Factory(list)
        retries: int = 1

        def config_problems(self):
            problems = [
                (("servers", i), f"expected ldap:// or ldaps://, got {uri!r}")
                for i, uri in enumerate(self.servers)
                if not uri.startswith(("ldap://", "ldaps://"))
            ]
            if self.retries > 5:
                problems.append((("retries",), "at most 5"))
            return problems

    problems = problems_of(
        {
            "plugins": {"x": {"servers": ["ldap://a", "http://b"], "retries": 9}},
            "limits": {"defaults": {"memory": "lots"}},
        },
        sections={"x": Section},
    )
    assert problems == [
        "limits.defaults.memory: expected a size like '512m', '32g' or '1.5GiB', got 'lots'",
        "plugins.x.servers[1]: expected ldap:// or ldaps://, got 'http://b'",
        "plugins.x.retries: at most 5",
    ]
