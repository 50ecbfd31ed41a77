"""The configuration's schema: one attrs class per section of the file, and the whole file.

Each field's type says how it is read (:mod:`.converter`); a default here is the value used when
the file leaves the key out. ``None`` in a :class:`LimitSet` means "not set at this level".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import attrs

from ds01_core.domain.config.checks import AbsPath
from ds01_core.domain.config.cycle import CycleConfig
from ds01_core.domain.units import ByteSize, Duration, TimeLimit
from ds01_core.domain.users import normalize_username

#: Where a container comes from, as detection tells them apart; ``lifecycle.origins`` keys.
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
    faults_file: AbsPath | None = None  # GPU faults to simulate, re-read when it changes


@attrs.define
class HealthConfig:
    """How a GPU's readings become its health (docs/gpu-health.md): which states drain it (no
    new allocations; ``[]``: never), how long an XID counts, how close to the slowdown
    temperature is too hot (degrees Celsius), and which XIDs make a GPU unhealthy."""

    drain: list[Literal["degraded", "unhealthy"]] = attrs.Factory(lambda: ["unhealthy"])
    xid_window: Duration = Duration(15 * 60)
    thermal_margin: float = 5.0
    critical_xids: list[int] = attrs.Factory(lambda: [48, 63, 64, 74, 79, 92, 94, 95])


@attrs.define
class GpuConfig:
    backend: Literal["auto", "nvml", "simulated"] = "auto"
    simulated: SimulatedGpuConfig = attrs.Factory(SimulatedGpuConfig)
    ignored_process_names: list[str] = attrs.Factory(
        lambda: ["nvidia-persistenced", "nv-hostengine", "dcgm", "nvidia-smi"]
    )
    health: HealthConfig = attrs.Factory(HealthConfig)


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
    max_images: int | None = None
    max_image_storage: ByteSize | None = None

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
    #: the largest ``docker load`` archive or build context a user may send (spooled to disk
    #: to be checked first)
    max_image_upload: ByteSize = ByteSize(32 * 1024**3)


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
    """The whole file: every core section, the plugins' sections, and where it was read from."""

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
