"""The simulated provider: a GPU host described in YAML, read through the NVML provider.

So that every feature of ds01 can be run and tested without a GPU, a topology file (by default
the embedded ``dgx_a100.yaml``) describes GPUs, MIG instances, memory, utilisation and
processes; :class:`~ds01_core.domain.gpu.simnvml.SimulatedNvml` answers NVML calls from it, and the
ordinary :class:`~ds01_core.domain.gpu.nvml.NvmlProvider` code reads it.

A *processes file* (YAML or JSON list of ``{pid, slot, used_memory}``) is re-read on every query,
so tests and demos can make real host PIDs appear as GPU processes while ds01 runs.
"""

from __future__ import annotations

import importlib.resources
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import yaml

from ds01_core.domain.config import ConfigProblem, structure_section
from ds01_core.domain.gpu.base import GpuProviderError
from ds01_core.domain.gpu.nvml import NvmlProvider
from ds01_core.domain.gpu.simnvml import (
    SimGpu,
    SimHost,
    SimInstance,
    SimProcess,
    SimProfile,
    SimulatedNvml,
)
from ds01_core.domain.units import ByteSize

#: Namespace of the UUIDs derived for GPUs and MIG instances that the file gives none for.
UUID_NAMESPACE = uuid.UUID("5d3c0f1e-9a59-4d6e-8c51-0d5a01d501d5")
DEFAULT_TOPOLOGY = "dgx_a100.yaml"


class SimulatedTopologyError(GpuProviderError):
    """A topology or processes file refused, with every problem named by its place in the file."""

    def __init__(self, source: str, problems: list[ConfigProblem]):
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"{source}: {problems[0]}")
            return
        lines = [f"{source}: {len(problems)} problems in the simulated GPU host:"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


# -- the file format ------------------------------------------------------------------------------


@attrs.define
class ProfileSpec:
    id: int
    slices: int
    memory: ByteSize


@attrs.define
class ModelSpec:
    memory: ByteSize
    profiles: dict[str, ProfileSpec] = attrs.Factory(dict)


@attrs.define
class ProcessSpec:
    pid: int
    used_memory: ByteSize | None = None


@attrs.define
class InstanceSpec:
    profile: str
    gi: int
    ci: int = 0
    uuid: str | None = None
    memory_used: ByteSize | None = None
    processes: list[ProcessSpec] = attrs.Factory(list)
    sm_utilization: float | None = None  # what GPM reports for this instance (gpm: true)


@attrs.define
class GpuSpec:
    """One GPU; ``mig`` present (even empty) means MIG mode is on."""

    model: str | None = None
    uuid: str | None = None
    memory_used: ByteSize | None = None
    utilization: int | None = None
    memory_utilization: int | None = None
    power_watts: float | None = None
    energy_joules: float | None = None
    processes: list[ProcessSpec] = attrs.Factory(list)
    mig: list[InstanceSpec] | None = None
    gpm: bool = False  # GPU performance monitoring (Hopper and newer): MIG utilisation


@attrs.define
class TopologySpec:
    name: str
    models: dict[str, ModelSpec]
    gpus: list[GpuSpec]
    default_model: str | None = None
    driver_version: str = "550.54.15"


@attrs.define
class ProcessEntry:
    """One line of a processes file: a PID on a slot (UUID, legacy MIG UUID or slot id)."""

    pid: int
    slot: str
    used_memory: ByteSize | None = None


# -- reading files ------------------------------------------------------------------------------


def default_topology_path() -> Path:
    return Path(str(importlib.resources.files("ds01_core.domain.gpu").joinpath(DEFAULT_TOPOLOGY)))


def _read_data(path: Path) -> Any:
    """The parsed content of a YAML or JSON file; errors name the file and the line."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimulatedTopologyError(source, [ConfigProblem("", "file not found")]) from None
    except OSError as exc:
        raise SimulatedTopologyError(
            source, [ConfigProblem("", f"cannot read: {exc.strerror}")]
        ) from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise SimulatedTopologyError(source, [ConfigProblem("", problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SimulatedTopologyError(
            source, [ConfigProblem("", f"not valid YAML{where}: {problem}")]
        ) from None


def load_topology(path: str | Path | None = None) -> SimHost:
    """Read and validate a topology file (default: the embedded DGX-A100 host)."""
    topology = Path(path).expanduser() if path is not None else default_topology_path()
    return build_host(_read_data(topology), source=str(topology))


def build_host(data: Any, *, source: str = "<topology>") -> SimHost:
    """Validate parsed topology data into a :class:`SimHost`, or raise with every problem."""
    spec, problems = structure_section(data, TopologySpec, "")
    if spec is not None:
        problems += _check_topology(spec)
    if problems or spec is None:
        raise SimulatedTopologyError(source, problems)
    return _resolve_host(spec, source)


# -- validation -----------------------------------------------------------------------------------


def _check_topology(spec: TopologySpec) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for name, model in spec.models.items():
        problems += _check_model(name, model)
    if spec.default_model is not None and spec.default_model not in spec.models:
        problems.append(_unknown_model("default_model", spec.default_model, spec))
    if not spec.gpus:
        problems.append(ConfigProblem("gpus", "lists no GPU"))
    for index, gpu in enumerate(spec.gpus):
        problems += _check_gpu(f"gpus[{index}]", gpu, spec)
    problems += _check_unique_uuids(spec)
    return problems


def _check_model(name: str, model: ModelSpec) -> list[ConfigProblem]:
    problems = []
    path = f"models.{name}"
    if model.memory <= 0:
        problems.append(ConfigProblem(f"{path}.memory", "must be greater than 0"))
    seen: dict[int, str] = {}
    for profile_name, profile in model.profiles.items():
        where = f"{path}.profiles.{profile_name}"
        if not 0 <= profile.id < SimulatedNvml.NVML_GPU_INSTANCE_PROFILE_COUNT:
            limit = SimulatedNvml.NVML_GPU_INSTANCE_PROFILE_COUNT - 1
            problems.append(
                ConfigProblem(f"{where}.id", f"must be an NVML profile id, 0 to {limit}")
            )
        elif profile.id in seen:
            problems.append(
                ConfigProblem(
                    f"{where}.id", f"profile id {profile.id} is also {seen[profile.id]!r}"
                )
            )
        seen.setdefault(profile.id, profile_name)
        if profile.slices <= 0:
            problems.append(ConfigProblem(f"{where}.slices", "must be greater than 0"))
        if not 0 < profile.memory <= model.memory:
            problems.append(
                ConfigProblem(f"{where}.memory", "must be greater than 0 and fit the GPU's memory")
            )
    return problems


def _unknown_model(path: str, name: str, spec: TopologySpec) -> ConfigProblem:
    known = ", ".join(sorted(spec.models)) or "none defined"
    return ConfigProblem(path, f"unknown model {name!r} (models: {known})")


def _check_gpu(path: str, gpu: GpuSpec, spec: TopologySpec) -> list[ConfigProblem]:
    name = gpu.model or spec.default_model
    if name is None:
        return [ConfigProblem(f"{path}.model", "required (the file sets no default_model)")]
    if name not in spec.models:
        return [_unknown_model(f"{path}.model", name, spec)]
    model = spec.models[name]
    problems = _check_usage(path, gpu.memory_used, model.memory, gpu.processes)
    for key in ("utilization", "memory_utilization"):
        value = getattr(gpu, key)
        if value is not None and not 0 <= value <= 100:
            problems.append(ConfigProblem(f"{path}.{key}", f"must be 0 to 100, got {value}"))
    for key in ("power_watts", "energy_joules"):
        value = getattr(gpu, key)
        if value is not None and value < 0:
            problems.append(ConfigProblem(f"{path}.{key}", f"cannot be negative, got {value}"))
    if gpu.mig is not None:
        problems += _check_mig(path, gpu, gpu.mig, name, model)
    return problems


def _check_usage(
    path: str, used: int | None, total: int, processes: list[ProcessSpec]
) -> list[ConfigProblem]:
    problems = []
    if used is not None and used > total:
        problems.append(ConfigProblem(f"{path}.memory_used", f"exceeds the memory ({total} bytes)"))
    for index, proc in enumerate(processes):
        if proc.pid <= 0:
            problems.append(ConfigProblem(f"{path}.processes[{index}].pid", "must be positive"))
    return problems


def _check_mig(
    path: str, gpu: GpuSpec, instances: list[InstanceSpec], name: str, model: ModelSpec
) -> list[ConfigProblem]:
    if not model.profiles:
        return [ConfigProblem(f"{path}.mig", f"model {name!r} lists no MIG profiles")]
    if gpu.processes or gpu.memory_used is not None or gpu.utilization is not None:
        return [
            ConfigProblem(
                path,
                "a GPU in MIG mode takes processes and memory_used per instance (under mig), "
                "and reports no utilization",
            )
        ]
    problems = []
    ids: set[tuple[int, int]] = set()
    slices_per_gi: dict[int, int] = {}
    for index, inst in enumerate(instances):
        where = f"{path}.mig[{index}]"
        profile = model.profiles.get(inst.profile)
        if profile is None:
            known = ", ".join(model.profiles)
            problems.append(
                ConfigProblem(f"{where}.profile", f"unknown profile {inst.profile!r} ({known})")
            )
            continue
        if (inst.gi, inst.ci) in ids:
            problems.append(
                ConfigProblem(where, f"gi {inst.gi} / ci {inst.ci} is listed twice on this GPU")
            )
        ids.add((inst.gi, inst.ci))
        slices_per_gi[inst.gi] = profile.slices
        problems += _check_usage(where, inst.memory_used, profile.memory, inst.processes)
    total = max(p.slices for p in model.profiles.values())
    if sum(slices_per_gi.values()) > total:
        problems.append(
            ConfigProblem(
                f"{path}.mig",
                f"instances take {sum(slices_per_gi.values())} slices; {name} has {total}",
            )
        )
    return problems


def _check_unique_uuids(spec: TopologySpec) -> list[ConfigProblem]:
    problems = []
    seen: set[str] = set()
    for index, gpu in enumerate(spec.gpus):
        given = [(f"gpus[{index}].uuid", gpu.uuid, "GPU-")]
        given += [
            (f"gpus[{index}].mig[{i}].uuid", inst.uuid, "MIG-")
            for i, inst in enumerate(gpu.mig or [])
        ]
        for path, value, prefix in given:
            if value is None:
                continue
            if not value.startswith(prefix) or value.startswith("MIG-GPU-"):
                problems.append(ConfigProblem(path, f"expected a UUID like {prefix}xxxxxxxx-…"))
            elif value in seen:
                problems.append(ConfigProblem(path, f"{value} is used twice"))
            seen.add(value)
    return problems


# -- from the file format to the simulated machine ---------------------------------------------


def _derived_uuid(prefix: str, *parts: object) -> str:
    return f"{prefix}{uuid.uuid5(UUID_NAMESPACE, '/'.join(map(str, parts)))}"


def _processes(specs: list[ProcessSpec]) -> list[SimProcess]:
    return [
        SimProcess(p.pid, int(p.used_memory) if p.used_memory is not None else None) for p in specs
    ]


def _used(explicit: int | None, processes: list[SimProcess]) -> int:
    if explicit is not None:
        return int(explicit)
    return sum(p.used_memory or 0 for p in processes)


def _resolve_host(spec: TopologySpec, source: str) -> SimHost:
    gpus = [_resolve_gpu(index, gpu, spec) for index, gpu in enumerate(spec.gpus)]
    return SimHost(name=spec.name, driver_version=spec.driver_version, gpus=gpus, source=source)


def _resolve_gpu(index: int, gpu: GpuSpec, spec: TopologySpec) -> SimGpu:
    model_name = gpu.model or spec.default_model
    assert model_name is not None  # checked
    model = spec.models[model_name]
    profiles = {
        name: SimProfile(id=p.id, name=name, slices=p.slices, memory=int(p.memory))
        for name, p in model.profiles.items()
    }
    gpu_uuid = gpu.uuid or _derived_uuid("GPU-", spec.name, index)
    processes = _processes(gpu.processes)
    instances = None
    if gpu.mig is not None:
        instances = [_resolve_instance(gpu_uuid, inst, profiles) for inst in gpu.mig]
    return SimGpu(
        index=index,
        uuid=gpu_uuid,
        model=model_name,
        memory_total=int(model.memory),
        profiles=tuple(sorted(profiles.values(), key=lambda p: p.id)),
        memory_used=_used(gpu.memory_used, processes),
        utilization=gpu.utilization,
        memory_utilization=gpu.memory_utilization,
        power_watts=gpu.power_watts,
        energy_joules=gpu.energy_joules,
        instances=instances,
        processes=processes,
        gpm_supported=gpu.gpm,
    )


def _resolve_instance(
    gpu_uuid: str, inst: InstanceSpec, profiles: dict[str, SimProfile]
) -> SimInstance:
    processes = _processes(inst.processes)
    return SimInstance(
        uuid=inst.uuid or _derived_uuid("MIG-", gpu_uuid, inst.gi, inst.ci),
        profile=profiles[inst.profile],
        gpu_instance_id=inst.gi,
        compute_instance_id=inst.ci,
        sm_utilization=inst.sm_utilization,
        memory_used=_used(inst.memory_used, processes),
        processes=processes,
    )


# -- the processes file -------------------------------------------------------------------------


class ProcessesFile:
    """Extra GPU processes read from a file on every call; a missing file means none."""

    def __init__(self, path: str | Path, host: SimHost):
        self.path = Path(path).expanduser()
        self.host = host
        self._cache: tuple[tuple[int, int, int], list[tuple[str, SimProcess]]] | None = None

    def __call__(self) -> list[tuple[str, SimProcess]]:
        """The file's processes; parsed again only when the file changed (it is consulted on
        every process listing, like the driver would be)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == key:
            return list(self._cache[1])
        found = self._parse()
        self._cache = (key, found)
        return list(found)

    def _parse(self) -> list[tuple[str, SimProcess]]:
        data = _read_data(self.path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise SimulatedTopologyError(
                str(self.path), [ConfigProblem("", "expected a list of {pid, slot, used_memory}")]
            )
        found, problems = [], []
        for index, raw in enumerate(data):
            entry, more = self._entry(index, raw)
            problems += more
            if entry is not None:
                found.append(entry)
        if problems:
            raise SimulatedTopologyError(str(self.path), problems)
        return found

    def _entry(
        self, index: int, raw: Any
    ) -> tuple[tuple[str, SimProcess] | None, list[ConfigProblem]]:
        path = f"[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("slot"), int | float):
            raw = {**raw, "slot": str(raw["slot"])}  # YAML reads slot 5.1 as a number
        entry, problems = structure_section(raw, ProcessEntry, path)
        if entry is None:
            return None, problems
        if entry.pid <= 0:
            return None, [ConfigProblem(f"{path}.pid", "must be positive")]
        leaf = self.host.find_leaf(entry.slot)
        if leaf is None:
            return None, [ConfigProblem(f"{path}.slot", _unknown_slot(entry.slot, self.host))]
        used = int(entry.used_memory) if entry.used_memory is not None else None
        return (leaf, SimProcess(entry.pid, used)), []


def _unknown_slot(ref: str, host: SimHost) -> str:
    ids = []
    for gpu in host.gpus:
        if gpu.instances is None:
            ids.append(str(gpu.index))
        else:
            ids += [f"{gpu.index}.{i.gpu_instance_id}" for i in gpu.instances]
    return f"no slot {ref!r} on the simulated host (slots: {', '.join(ids)}, or a UUID)"


# -- the provider -----------------------------------------------------------------------------


class SimulatedProvider(NvmlProvider):
    """The NVML provider over a simulated host; ``name`` is ``"simulated"``.

    :param reason: why the simulated host is in use, for ``description`` (``auto: …``).
    """

    def __init__(
        self,
        topology_path: str | Path | None = None,
        processes_file: str | Path | None = None,
        *,
        reason: str | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.host = load_topology(topology_path)
        extra: Callable[[], Iterable[tuple[str, SimProcess]]] | None = None
        if processes_file is not None:
            extra = ProcessesFile(processes_file, self.host)
        kwargs: dict[str, Any] = {"extra_processes": extra}
        if clock is not None:
            kwargs["clock"] = clock
        self.nvml = SimulatedNvml(self.host, **kwargs)
        what = f"{self.host.name} topology from {self.host.source}"
        description = f"simulated host ({reason}; {what})" if reason else f"simulated host ({what})"
        super().__init__(self.nvml, name="simulated", description=description)
