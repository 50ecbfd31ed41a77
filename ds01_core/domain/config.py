"""The configuration file: attrs classes, one strict cattrs converter, and whole-file validation.

A file is accepted or refused as a whole. Every problem is reported with its path in the file
(``limits.groups.student.max_gpu_equivalents: expected a number, got 'two'``), so an admin fixes
them all in one go; the daemon keeps running on its last good configuration meanwhile.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import yaml
from cattrs.cols import is_mapping, is_sequence, list_structure_factory, mapping_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from ds01_core.domain.config_checks import (
    AbsPath,
    absolute_path,
    bounded_int,
    checked_duration,
    checked_size,
    finite_float,
    limit_problem,
)
from ds01_core.domain.config_cycle import CycleConfig
from ds01_core.domain.units import ByteSize, Duration, TimeLimit
from ds01_core.domain.users import normalize_username

DEFAULT_CONFIG_PATH = "/etc/ds01/ds01.yaml"
CONFIG_ENV = "DS01_CONFIG"
ORIGINS = ("ds01", "devcontainer", "compose", "docker", "unknown")


# -- core sections --------------------------------------------------------------------------


@attrs.define
class PathsConfig:
    """Where ds01 keeps its state, its logs and its runtime files (sockets, snapshots)."""

    state_dir: AbsPath = AbsPath("/var/lib/ds01")
    log_dir: AbsPath = AbsPath("/var/log/ds01")
    runtime_dir: AbsPath = AbsPath("/run/ds01")
    event_log: AbsPath | None = None

    @property
    def event_log_path(self) -> Path:
        return Path(self.event_log) if self.event_log else Path(self.log_dir) / "events.jsonl"

    @property
    def snapshot_path(self) -> Path:
        return Path(self.runtime_dir) / "inventory.json"

    @property
    def state_db_path(self) -> Path:
        return Path(self.state_dir) / "state.db"


@attrs.define
class SimulatedGpuConfig:
    """The simulated host used when no NVIDIA driver loads (or when asked for)."""

    topology: AbsPath | None = None
    processes_file: AbsPath | None = None


@attrs.define
class GpuConfig:
    backend: Literal["auto", "nvml", "simulated"] = "auto"
    simulated: SimulatedGpuConfig = attrs.Factory(SimulatedGpuConfig)
    ignored_process_names: list[str] = attrs.Factory(
        lambda: ["nvidia-persistenced", "nv-hostengine", "dcgm", "nvidia-smi"]
    )


@attrs.define
class DetectionConfig:
    """How workloads are found and attributed."""

    home_roots: list[AbsPath] = attrs.Factory(lambda: [AbsPath("/home")])
    process_confirm_cycles: int = 2


@attrs.define
class EnforcementConfig:
    """``hard``: a request over a limit is refused. ``soft``: it is granted with a warning."""

    mode: Literal["hard", "soft"] = "hard"


@attrs.define
class AllocationConfig:
    """How GPU allocations are held and released, and what the daemon does with a container
    running on a slot allocated to another (``stop`` it, or only ``log`` a ``gpu.conflict``)."""

    gpu_hold_after_stop: Duration = Duration(15 * 60)
    stop_timeout: Duration = Duration(30)
    owner_map_dir: AbsPath | None = None
    queue_recheck: Duration = Duration(30)
    foreign_slot_action: Literal["stop", "log"] = "stop"


@attrs.define
class LimitSet:
    """Limits as written at one level (defaults, a group, a user, an override).

    ``None`` means "not set here": the value comes from the level below. A time limit
    (``idle_timeout``, ``max_runtime``) says "no limit" as ``never``; ``null`` is refused for
    it, since older files used ``null`` to mean never.
    """

    max_gpu_equivalents: float | None = None
    max_gpu_slots_per_container: int | None = None
    allow_full_gpu: bool | None = None
    max_containers_per_user: int | None = None
    max_cpus: float | None = None
    memory: ByteSize | None = None
    memory_swap: ByteSize | None = None
    shm_size: ByteSize | None = None
    pids_limit: int | None = None
    cpu_quota: float | None = None
    memory_max: ByteSize | None = None
    memory_high: ByteSize | None = None
    tasks_max: int | None = None
    io_read_bps: ByteSize | None = None
    io_write_bps: ByteSize | None = None
    io_read_iops: int | None = None
    io_write_iops: int | None = None
    disk_quota: ByteSize | None = None
    idle_timeout: TimeLimit | None = None
    max_runtime: TimeLimit | None = None
    gpu_idle_threshold: float | None = None
    cpu_idle_threshold: float | None = None
    network_idle_threshold: ByteSize | None = None

    def items_set(self) -> Iterable[tuple[str, Any]]:
        for field in attrs.fields(LimitSet):
            value = getattr(self, field.name)
            if value is not None:
                yield field.name, value


LIMIT_KEYS: tuple[str, ...] = tuple(f.name for f in attrs.fields(LimitSet))

#: Values used when neither the file's ``limits.defaults`` nor any other level sets a key.
#: Keys absent here have no limit unless configured.
BUILTIN_LIMITS = LimitSet(
    max_gpu_equivalents=1.0,
    max_gpu_slots_per_container=1,
    allow_full_gpu=True,
    max_containers_per_user=3,
    idle_timeout=TimeLimit(2 * 3600),
    max_runtime=TimeLimit(7 * 86400),
    gpu_idle_threshold=5.0,
    cpu_idle_threshold=0.05,
    network_idle_threshold=ByteSize(2048),
)


@attrs.define
class GroupLimits(LimitSet):
    """A group: its members and the limits they share (per user, not pooled)."""

    members: list[str] = attrs.Factory(list)


@attrs.define
class UserLimits(LimitSet):
    """Per-user limits; ``group`` places the user in a group as an alternative to ``members``."""

    group: str | None = None


@attrs.define
class Override:
    """A time-limited exception for one user, approved by someone, for a stated reason."""

    user: str
    values: LimitSet
    expires: dt.datetime
    reason: str
    approved_by: str


@attrs.define
class LimitsConfig:
    defaults: LimitSet = attrs.Factory(LimitSet)
    groups: dict[str, GroupLimits] = attrs.Factory(dict)
    users: dict[str, UserLimits] = attrs.Factory(dict)
    overrides: list[Override] = attrs.Factory(list)


@attrs.define
class OriginPolicy:
    """Containers of one origin: each key, when set, can only make the policy that applies to
    every container stricter (shorter), never more lenient.

    Origins are told apart by names and labels, which a user chooses: a policy that could
    loosen a limit would let anyone escape it by naming a container ``vsc-…``.
    """

    idle_timeout: TimeLimit | None = None
    max_runtime: TimeLimit | None = None
    stop_grace: Duration | None = None
    created_timeout: TimeLimit | None = None
    container_hold_after_stop: TimeLimit | None = None


@attrs.define
class LifecycleConfig:
    """The daemon's cycle and what it does to idle, long-running and leftover containers."""

    interval: Duration = Duration(30)
    idle_window: int = 3
    start_grace: Duration = Duration(10 * 60)
    warn_at: list[float] = attrs.Factory(lambda: [0.8, 0.95])
    quota_warn_at: float = 0.9
    keepalive_max: Duration = Duration(12 * 3600)
    high_demand_share: float = 0.9
    high_demand_factor: float = 0.5
    stop_grace: Duration = Duration(30)
    created_timeout: TimeLimit = TimeLimit(86400)
    container_hold_after_stop: TimeLimit = TimeLimit(7 * 86400)
    origins: dict[str, OriginPolicy] = attrs.Factory(dict)


@attrs.define
class GatewayConfig:
    """The Docker API gateway: where it listens, what it forwards to, what users may mount."""

    socket: str = "/run/ds01/docker.sock"
    upstream: str = "/var/run/docker.sock"
    admin_group: str = "ds01-admin"
    workspace_roots: list[AbsPath] = attrs.Factory(list)
    read_only_paths: list[AbsPath] = attrs.Factory(list)
    extra_capabilities: list[str] = attrs.Factory(list)
    runtimes: list[str] = attrs.Factory(lambda: ["runc", "nvidia"])
    log_admin_requests: bool = True
    max_request_body: ByteSize = ByteSize(16 * 1024 * 1024)
    max_connections_per_user: int = 64


@attrs.define
class ApiConfig:
    """The local API socket (``ds01-api``): how users' ``ds01`` commands reach the services."""

    socket: str = "/run/ds01/api.sock"
    max_connections_per_user: int = 16


@attrs.define
class PrivacyConfig:
    """What users see of each other's work in ``ds01 workloads`` and ``ds01 gpu status``
    (admins see everything). Owners are visible by default, as ``nvidia-smi`` shows processes;
    other users' container names, images, commands and ids are not."""

    show_other_owners: bool = True
    show_other_container_names: bool = False


@attrs.define
class BareMetalConfig:
    """GPU use outside containers: who may, for how long, and what happens to the others."""

    group: str = "ds01-gpu-direct"
    action: Literal["notify", "kill"] = "notify"
    grace: Duration = Duration(5 * 60)
    default_duration: Duration = Duration(8 * 3600)


@attrs.define
class PluginsConfig:
    """Which plugins run, which must, and in which order.

    ``sections`` holds each plugin's own settings (``plugins.<name>:`` in the file), structured
    into the class that plugin declares through ``plugin_config_sections``.
    """

    disabled: list[str] = attrs.Factory(list)
    required: list[str] = attrs.Factory(list)
    order: list[str] = attrs.Factory(list)
    sections: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Config:
    paths: PathsConfig = attrs.Factory(PathsConfig)
    gpu: GpuConfig = attrs.Factory(GpuConfig)
    detection: DetectionConfig = attrs.Factory(DetectionConfig)
    enforcement: EnforcementConfig = attrs.Factory(EnforcementConfig)
    allocation: AllocationConfig = attrs.Factory(AllocationConfig)
    limits: LimitsConfig = attrs.Factory(LimitsConfig)
    lifecycle: LifecycleConfig = attrs.Factory(LifecycleConfig)
    gateway: GatewayConfig = attrs.Factory(GatewayConfig)
    api: ApiConfig = attrs.Factory(ApiConfig)
    privacy: PrivacyConfig = attrs.Factory(PrivacyConfig)
    bare_metal: BareMetalConfig = attrs.Factory(BareMetalConfig)
    cycle: CycleConfig = attrs.Factory(CycleConfig)
    plugins: PluginsConfig = attrs.Factory(PluginsConfig)
    source: str | None = attrs.field(default=None, kw_only=True)

    @property
    def allocation_owner_map_dir(self) -> Path:
        if self.allocation.owner_map_dir:
            return Path(self.allocation.owner_map_dir)
        return Path(self.paths.runtime_dir) / "gpu-owners"

    def group_of(self, user: str) -> str | None:
        """The group the configuration puts ``user`` in, or None."""
        user = normalize_username(user)
        entry = self.limits.users.get(user)
        if entry is not None and entry.group:
            return entry.group
        for name, group in self.limits.groups.items():
            if user in (normalize_username(m) for m in group.members):
                return name
        return None


# -- errors -----------------------------------------------------------------------------------


@attrs.frozen
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration refused as a whole; ``problems`` lists every reason with its path."""

    def __init__(self, source: str | None, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        where = source or "<config>"
        lines = [f"{where}: {len(problems)} problem(s), configuration refused:"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


# -- the converter ----------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {_describe(value)}")
    return finite_float(value)


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return bounded_int(int(value))
        raise ValueError(f"expected a whole number, got {_describe(value)}")
    return bounded_int(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _strict_str(value: Any, _type: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {_describe(value)}")
    return value


def _structure_datetime(value: Any, _type: type) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"expected a date like 2026-12-31 or 2026-12-31T18:00:00Z, got {value!r}"
            ) from None
    else:
        raise ValueError(
            f"expected a date like 2026-12-31 or 2026-12-31T18:00:00Z, got {_describe(value)}"
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _structure_literal_checked(value: Any, type_: Any) -> Any:
    allowed = type_.__args__
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"expected one of {choices}, got {_describe(value)}")
    return value


def _structure_time_limit(value: Any, _type: Any) -> TimeLimit:
    """A time limit, which may be left out but not written as ``null``: older files meant
    "never" by it, and "not set here" would silently mean the opposite."""
    if value is None:
        raise ValueError(
            "null is not a time limit: write 'never' for no limit, or leave the key out to "
            "keep the value from the level below"
        )
    return TimeLimit.parse(value)


def _guarded(check: type | tuple[type, ...], what: str, factory: Any) -> Any:
    """Wrap a cattrs hook factory so that a value of the wrong shape gets a plain message
    (cattrs would otherwise iterate a string as a list, or fail with an AttributeError)."""

    def make(type_: Any, conv: cattrs.Converter) -> Any:
        inner = factory(type_, conv)

        def structure(value: Any, target: Any) -> Any:
            if not isinstance(value, check) or isinstance(value, str | bytes):
                raise ValueError(f"expected {what}, got {_describe(value)}")
            return inner(value, target)

        return structure

    return make


def make_converter() -> cattrs.Converter:
    """The one converter used for every configuration class, core and plugin alike."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook_factory(
        is_mapping, _guarded(Mapping, "a mapping", mapping_structure_factory)
    )
    conv.register_structure_hook_factory(
        is_sequence, _guarded(list, "a list", list_structure_factory)
    )
    conv.register_structure_hook_factory(
        attrs.has, _guarded(Mapping, "a mapping", lambda t, c: c.gen_structure_attrs_fromdict(t))
    )
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(Duration, lambda v, _t: checked_duration(v))
    conv.register_structure_hook(ByteSize, lambda v, _t: checked_size(v))
    conv.register_structure_hook(AbsPath, lambda v, _t: absolute_path(_strict_str(v, str)))
    conv.register_structure_hook(TimeLimit, _structure_time_limit)
    conv.register_structure_hook_func(lambda t: t == TimeLimit | None, _structure_time_limit)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is Literal, _structure_literal_checked
    )
    conv.register_unstructure_hook(Duration, str)
    conv.register_unstructure_hook(TimeLimit, str)
    conv.register_unstructure_hook(ByteSize, str)
    conv.register_unstructure_hook(dt.datetime, lambda d: d.isoformat().replace("+00:00", "Z"))
    return conv


converter = make_converter()


def _problems_from(exc: BaseException, path: str) -> list[ConfigProblem]:
    """Walk a cattrs exception tree into path-named problems."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            ConfigProblem(_join(path, key), "unknown key (check the spelling; see docs/config.md)")
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        problems: list[ConfigProblem] = []
        for sub, note in with_notes:
            if hasattr(note, "name"):
                sub_path = _join(path, note.name)
            else:
                index = note.index
                sub_path = f"{path}[{index}]" if isinstance(index, int) else _join(path, index)
            problems += _problems_from(sub, sub_path)
        for sub in without_notes:
            problems += _problems_from(sub, path)
        return problems
    if isinstance(exc, KeyError):
        return [ConfigProblem(path, "required but missing")]
    if isinstance(exc, TypeError) and "missing" in str(exc):
        return [ConfigProblem(path, f"required key missing ({exc})")]
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and message.startswith("could not convert"):
        message = f"expected a number, got {message.split(':', 1)[-1].strip()}"
    return [ConfigProblem(path, message)]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


SectionPath = tuple[str | int, ...]


def section_problems(section: Any, path: str) -> list[ConfigProblem]:
    """A section's own cross-field checks, named by their full path.

    A plugin's config class may define ``config_problems(self) -> list[tuple[SectionPath,
    str]]``: each problem's path inside the section (``("servers", 1)``) and its message. They
    are reported with every other problem of the file (``plugins.ldap.servers[1]: …``).
    """
    check = getattr(section, "config_problems", None)
    if check is None:
        return []
    problems = []
    for inner, message in check():
        full = path
        for key in inner:
            full = f"{full}[{key}]" if isinstance(key, int) else _join(full, key)
        problems.append(ConfigProblem(full, message))
    return problems


def structure_section(data: Any, cls: type, path: str) -> tuple[Any, list[ConfigProblem]]:
    """Structure ``data`` into ``cls``; return the object (or None) and the problems found."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return None, [ConfigProblem(path, f"expected a mapping, got {_describe(data)}")]
    try:
        return converter.structure(dict(data), cls), []
    except Exception as exc:  # cattrs raises groups of anything a hook raised
        return None, _problems_from(exc, path)


# -- loading ---------------------------------------------------------------------------------


def resolve_config_path(explicit: str | None = None) -> str:
    """``--config`` wins, then ``$DS01_CONFIG``, then ``/etc/ds01/ds01.yaml``."""
    return explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def read_config_file(path: str) -> dict[str, Any]:
    """Read the YAML mapping at ``path``; a missing, unreadable or non-mapping file is refused."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path,
            [ConfigProblem("", "file not found (pass --config FILE or set DS01_CONFIG)")],
        ) from None
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML{where}: {problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            path, [ConfigProblem("", f"expected a mapping at the top, got {_describe(data)}")]
        )
    return data


def plugin_selection(data: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Best-effort read of ``plugins.disabled/required/order`` before full validation.

    The plugin manager must exist before the file can be validated (plugins contribute
    sections), so these three lists are read first; their own errors are reported by the full
    validation that follows.
    """
    plugins = data.get("plugins") if isinstance(data, Mapping) else None
    if not isinstance(plugins, Mapping):
        return [], [], []

    def names(key: str) -> list[str]:
        value = plugins.get(key)
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
        return []

    return names("disabled"), names("required"), names("order")


def build_config(
    data: Mapping[str, Any],
    *,
    sections: Mapping[str, type] | None = None,
    source: str | None = None,
    now: dt.datetime | None = None,
    ignore_sections: Iterable[str] = (),
) -> Config:
    """Validate a parsed file into a :class:`Config`, or raise :class:`ConfigError` with all problems.

    :param sections: plugin section name → attrs class, from ``plugin_config_sections``.
    :param ignore_sections: plugin sections kept unvalidated (their plugin is disabled or failed
        to load); they are not an error, so disabling a plugin never breaks the file.
    """
    sections = dict(sections or {})
    ignored = set(ignore_sections)
    problems: list[ConfigProblem] = []
    raw = dict(data)
    raw_plugins = raw.pop("plugins", None)
    if raw_plugins is None:
        raw_plugins = {}
    core, found = structure_section(raw, Config, "")
    problems += found
    plugins_cfg = PluginsConfig()
    if not isinstance(raw_plugins, Mapping):
        problems.append(
            ConfigProblem("plugins", f"expected a mapping, got {_describe(raw_plugins)}")
        )
    else:
        fixed = {k: raw_plugins[k] for k in ("disabled", "required", "order") if k in raw_plugins}
        plugins_obj, found = structure_section(fixed, PluginsConfig, "plugins")
        problems += found
        if plugins_obj is not None:
            plugins_cfg = plugins_obj
        for name, value in raw_plugins.items():
            if name in ("disabled", "required", "order", "sections"):
                continue
            if name in sections:
                obj, found = structure_section(value, sections[name], f"plugins.{name}")
                problems += found or section_problems(obj, f"plugins.{name}")
                plugins_cfg.sections[name] = obj
            elif name in ignored:
                plugins_cfg.sections[name] = value
            else:
                known = ", ".join(sorted(sections)) or "none"
                problems.append(
                    ConfigProblem(
                        f"plugins.{name}",
                        f"no installed plugin reads this section (sections known: {known})",
                    )
                )
        for name, cls in sections.items():
            if name not in plugins_cfg.sections:
                obj, found = structure_section({}, cls, f"plugins.{name}")
                problems += found
                plugins_cfg.sections[name] = obj
    if core is not None:
        core.plugins = plugins_cfg
        core.source = source
        problems += validate(core, now=now)
    if problems:
        raise ConfigError(source, problems)
    assert core is not None
    return core


def load_config(
    path: str,
    *,
    sections: Mapping[str, type] | None = None,
    now: dt.datetime | None = None,
    ignore_sections: Iterable[str] = (),
) -> Config:
    """Read and validate the file at ``path``."""
    data = read_config_file(path)
    return build_config(
        data, sections=sections, source=path, now=now, ignore_sections=ignore_sections
    )


# -- semantic checks -------------------------------------------------------------------------

_POSITIVE_KEYS = tuple(k for k in LIMIT_KEYS if k != "allow_full_gpu")


def _check_limit_set(limits: LimitSet, path: str) -> list[ConfigProblem]:
    problems = []
    for key in _POSITIVE_KEYS:
        value = getattr(limits, key)
        if isinstance(value, TimeLimit):  # never (infinity) is allowed; 0 or less is not
            if value <= 0:
                problems.append(ConfigProblem(_join(path, key), _not_positive(value)))
            continue
        problem = limit_problem(key, value)
        if problem is not None:
            problems.append(ConfigProblem(_join(path, key), problem))
    return problems


def _not_positive(value: Any) -> str:
    """The refusal of a zero or negative time limit, saying how to write what was meant."""
    return (
        f"must be greater than 0, got {value} (write 'never' for no limit, or leave the key "
        "out to keep the value from the level below)"
    )


def _check_lifecycle_limits(lifecycle: LifecycleConfig) -> list[ConfigProblem]:
    """Time limits of the lifecycle and of each origin: greater than 0 (``never`` for none)."""
    problems = []
    for key in ("created_timeout", "container_hold_after_stop"):
        value = getattr(lifecycle, key)
        if value <= 0:
            problems.append(ConfigProblem(f"lifecycle.{key}", _not_positive(value)))
    for origin, policy in lifecycle.origins.items():
        for key in ("idle_timeout", "max_runtime", "created_timeout", "container_hold_after_stop"):
            value = getattr(policy, key)
            if value is not None and value <= 0:
                path = f"lifecycle.origins.{origin}.{key}"
                problems.append(ConfigProblem(path, _not_positive(value)))
    return problems


def validate(config: Config, *, now: dt.datetime | None = None) -> list[ConfigProblem]:
    """Checks that span fields: positive quotas, group membership, overrides' dates."""
    now = now or dt.datetime.now(dt.UTC)
    problems: list[ConfigProblem] = []
    limits = config.limits
    problems += _check_limit_set(limits.defaults, "limits.defaults")
    for name, group in limits.groups.items():
        problems += _check_limit_set(group, f"limits.groups.{name}")
    for name, user in limits.users.items():
        problems += _check_limit_set(user, f"limits.users.{name}")

    seen_in: dict[str, str] = {}
    for name, group in limits.groups.items():
        for index, member in enumerate(group.members):
            member_norm = normalize_username(member)
            if member_norm in seen_in and seen_in[member_norm] != name:
                problems.append(
                    ConfigProblem(
                        f"limits.groups.{name}.members[{index}]",
                        f"user {member_norm!r} is already a member of group "
                        f"{seen_in[member_norm]!r}; a user belongs to one group",
                    )
                )
            seen_in.setdefault(member_norm, name)
    for name, user in limits.users.items():
        if user.group is None:
            continue
        if user.group not in limits.groups:
            known = ", ".join(sorted(limits.groups)) or "none defined"
            problems.append(
                ConfigProblem(
                    f"limits.users.{name}.group",
                    f"unknown group {user.group!r} (groups: {known})",
                )
            )
        elif (
            normalize_username(name) in seen_in and seen_in[normalize_username(name)] != user.group
        ):
            problems.append(
                ConfigProblem(
                    f"limits.users.{name}.group",
                    f"user {name!r} is listed as a member of group "
                    f"{seen_in[normalize_username(name)]!r} but placed in {user.group!r}; "
                    "a user belongs to one group",
                )
            )

    for index, override in enumerate(limits.overrides):
        path = f"limits.overrides[{index}]"
        problems += _check_limit_set(override.values, f"{path}.values")
        if not list(override.values.items_set()):
            problems.append(ConfigProblem(f"{path}.values", "sets no limit"))
        if override.expires <= now:
            problems.append(
                ConfigProblem(
                    f"{path}.expires",
                    f"expired on {override.expires.isoformat().replace('+00:00', 'Z')}; "
                    "remove the override or extend it",
                )
            )
        if not override.reason.strip():
            problems.append(ConfigProblem(f"{path}.reason", "must say why the override exists"))
        if not override.approved_by.strip():
            problems.append(ConfigProblem(f"{path}.approved_by", "must name who approved it"))

    for origin in config.lifecycle.origins:
        if origin not in ORIGINS:
            problems.append(
                ConfigProblem(
                    f"lifecycle.origins.{origin}",
                    f"unknown origin (origins: {', '.join(ORIGINS)})",
                )
            )
    if config.detection.process_confirm_cycles < 1:
        problems.append(ConfigProblem("detection.process_confirm_cycles", "must be at least 1"))
    if config.gateway.max_connections_per_user < 1:
        problems.append(ConfigProblem("gateway.max_connections_per_user", "must be at least 1"))
    for key in ("socket", "upstream"):
        if not getattr(config.gateway, key).removeprefix("unix://").startswith("/"):
            problems.append(
                ConfigProblem(f"gateway.{key}", "must be an absolute path (or unix:///path)")
            )
    if config.api.max_connections_per_user < 1:
        problems.append(ConfigProblem("api.max_connections_per_user", "must be at least 1"))
    if not config.api.socket.startswith("/"):
        problems.append(ConfigProblem("api.socket", "must be an absolute path"))
    lifecycle = config.lifecycle
    problems += _check_lifecycle_limits(lifecycle)
    if lifecycle.interval <= 0:
        problems.append(ConfigProblem("lifecycle.interval", "must be greater than 0"))
    if lifecycle.idle_window < 1:
        problems.append(ConfigProblem("lifecycle.idle_window", "must be at least 1 (cycles)"))
    for index, fraction in enumerate(lifecycle.warn_at):
        if not 0 < fraction < 1:
            problems.append(
                ConfigProblem(
                    f"lifecycle.warn_at[{index}]", f"must be between 0 and 1, got {fraction}"
                )
            )
    if not 0 < lifecycle.quota_warn_at <= 1:
        problems.append(ConfigProblem("lifecycle.quota_warn_at", "must be in (0, 1]"))
    if not 0 < lifecycle.high_demand_share <= 1:
        problems.append(ConfigProblem("lifecycle.high_demand_share", "must be in (0, 1]"))
    if not 0 < lifecycle.high_demand_factor <= 1:
        problems.append(ConfigProblem("lifecycle.high_demand_factor", "must be in (0, 1]"))
    plugins = config.plugins
    both = sorted(set(plugins.disabled) & set(plugins.required))
    for name in both:
        problems.append(
            ConfigProblem("plugins.required", f"{name!r} is both required and disabled")
        )
    return problems


def unstructure(config: Config) -> dict[str, Any]:
    """The configuration as plain data (for ``ds01 config show --json``)."""
    data = converter.unstructure(config)
    data.pop("source", None)
    sections = data["plugins"].pop("sections", {})
    data["plugins"].update(sections)
    return data
