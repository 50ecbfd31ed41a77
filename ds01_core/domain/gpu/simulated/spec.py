"""The topology file's format and its checks: what a simulated GPU host may say.

Structured with the configuration's converter (:func:`~ds01_core.domain.config.structure_section`),
so a topology file gets the same strict, path-naming errors as the configuration file; the checks
here add what the types cannot say (profiles that fit the GPU, slices that add up, unique UUIDs).
"""

from __future__ import annotations

import attrs

from ds01_core.domain.config import ConfigProblem
from ds01_core.domain.gpu.simulated.nvml import SimulatedNvml
from ds01_core.domain.units import ByteSize

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
class ComputeInstanceSpec:
    """One of several compute instances of a GPU instance: each is a MIG device of its own."""

    ci: int
    slices: int  # compute slices, out of the GPU instance's
    uuid: str | None = None
    mig_index: int | None = None
    processes: list[ProcessSpec] = attrs.Factory(list)


@attrs.define
class InstanceSpec:
    """A GPU instance: with its single compute instance (``ci``), or split into several
    (``compute_instances``, which then take the ids, UUIDs, MIG indexes and processes)."""

    profile: str
    gi: int
    ci: int = 0
    uuid: str | None = None
    memory_used: ByteSize | None = None
    processes: list[ProcessSpec] = attrs.Factory(list)
    sm_utilization: float | None = None  # what GPM reports for this instance (gpm: true)
    mig_index: int | None = None  # NVML's MIG device index; default: its place in the list
    compute_instances: list[ComputeInstanceSpec] | None = None


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
    minor_number: int | None = None  # /dev/nvidia<minor>; default: the GPU's index


@attrs.define
class TopologySpec:
    name: str
    models: dict[str, ModelSpec]
    gpus: list[GpuSpec]
    default_model: str | None = None
    driver_version: str = "550.54.15"


# -- validation -----------------------------------------------------------------------------------


def check_topology(spec: TopologySpec) -> list[ConfigProblem]:
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
    problems += _check_minor_numbers(spec)
    return problems


def _check_minor_numbers(spec: TopologySpec) -> list[ConfigProblem]:
    problems = []
    seen: dict[int, int] = {}
    for index, gpu in enumerate(spec.gpus):
        minor = index if gpu.minor_number is None else gpu.minor_number
        path = f"gpus[{index}].minor_number"
        if minor < 0:
            problems.append(ConfigProblem(path, "cannot be negative"))
        elif minor in seen:
            problems.append(ConfigProblem(path, f"/dev/nvidia{minor} is also GPU {seen[minor]}'s"))
        seen.setdefault(minor, index)
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
        if inst.compute_instances is not None:
            problems += check_compute_instances(where, inst, profile.slices, ids)
    total = max(p.slices for p in model.profiles.values())
    problems += check_mig_indexes(path, instances, total)
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
        given += [
            (f"gpus[{index}].mig[{i}].compute_instances[{c}].uuid", each.uuid, "MIG-")
            for i, inst in enumerate(gpu.mig or [])
            for c, each in enumerate(inst.compute_instances or [])
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


def check_compute_instances(
    where: str, inst: InstanceSpec, gi_slices: int, ids: set[tuple[int, int]]
) -> list[ConfigProblem]:
    """A GPU instance split into compute instances: ids unique, slices within the instance."""
    assert inst.compute_instances is not None
    if inst.ci or inst.uuid or inst.processes or inst.mig_index is not None:
        return [
            ConfigProblem(
                where,
                "with compute_instances, give ci, uuid, mig_index and processes per compute "
                "instance",
            )
        ]
    if not inst.compute_instances:
        return [ConfigProblem(f"{where}.compute_instances", "lists no compute instance")]
    problems = []
    ids.discard((inst.gi, 0))  # the GPU instance's own entry stands for its first one
    for index, each in enumerate(inst.compute_instances):
        path = f"{where}.compute_instances[{index}]"
        if (inst.gi, each.ci) in ids:
            problems.append(ConfigProblem(path, f"gi {inst.gi} / ci {each.ci} is listed twice"))
        ids.add((inst.gi, each.ci))
        if each.slices <= 0:
            problems.append(ConfigProblem(f"{path}.slices", "must be greater than 0"))
        problems += _check_usage(path, None, 0, each.processes)
    taken = sum(each.slices for each in inst.compute_instances)
    if taken > gi_slices:
        problems.append(
            ConfigProblem(
                f"{where}.compute_instances",
                f"take {taken} slices; {inst.profile} has {gi_slices}",
            )
        )
    return problems


def device_places(instances: list[InstanceSpec]) -> list[tuple[str, int | None]]:
    """``(path, explicit MIG index)`` of each MIG device, in the order NVML lists them."""
    places: list[tuple[str, int | None]] = []
    for index, inst in enumerate(instances):
        if inst.compute_instances is None:
            places.append((f"mig[{index}]", inst.mig_index))
            continue
        places += [
            (f"mig[{index}].compute_instances[{c}]", each.mig_index)
            for c, each in enumerate(inst.compute_instances)
        ]
    return places


def check_mig_indexes(path: str, instances: list[InstanceSpec], total: int) -> list[ConfigProblem]:
    """MIG indexes (explicit, or a device's place in the list) unique and below the GPU's
    MIG device count."""
    problems = []
    seen: set[int] = set()
    for position, (where, given) in enumerate(device_places(instances)):
        mig_index = position if given is None else given
        if not 0 <= mig_index < total:
            problems.append(ConfigProblem(f"{path}.{where}.mig_index", f"must be 0 to {total - 1}"))
        elif mig_index in seen:
            problems.append(
                ConfigProblem(f"{path}.{where}.mig_index", f"MIG index {mig_index} is taken")
            )
        seen.add(mig_index)
    return problems
