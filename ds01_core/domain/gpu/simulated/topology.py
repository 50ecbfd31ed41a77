"""Reading a topology file into a simulated host: parsed, checked, and every name resolved.

A GPU or MIG instance the file gives no UUID gets one derived from the host's name and its place,
so the same file always describes the same devices. Errors name the file and the place in it.
"""

from __future__ import annotations

import importlib.resources
import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from ds01_core.domain.config import ConfigProblem, structure_section
from ds01_core.domain.gpu.base import GpuProviderError
from ds01_core.domain.gpu.simulated.host import SimGpu, SimHost, SimInstance, SimProcess, SimProfile
from ds01_core.domain.gpu.simulated.spec import (
    GpuSpec,
    InstanceSpec,
    ProcessSpec,
    TopologySpec,
    check_topology,
)

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


# -- reading files ------------------------------------------------------------------------------


def default_topology_path() -> Path:
    return Path(str(importlib.resources.files("ds01_core.domain.gpu").joinpath(DEFAULT_TOPOLOGY)))


def read_data(path: Path) -> Any:
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
    return build_host(read_data(topology), source=str(topology))


def build_host(data: Any, *, source: str = "<topology>") -> SimHost:
    """Validate parsed topology data into a :class:`SimHost`, or raise with every problem."""
    spec, problems = structure_section(data, TopologySpec, "")
    if spec is not None:
        problems += check_topology(spec)
    if problems or spec is None:
        raise SimulatedTopologyError(source, problems)
    return _resolve_host(spec, source)


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
        instances = [
            device for inst in gpu.mig for device in _resolve_instance(gpu_uuid, inst, profiles)
        ]
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
        minor_number=index if gpu.minor_number is None else gpu.minor_number,
    )


def _resolve_instance(
    gpu_uuid: str, inst: InstanceSpec, profiles: dict[str, SimProfile]
) -> list[SimInstance]:
    """The MIG devices of one GPU instance: itself, or each of its compute instances. Its
    ``memory_used``, when given, is put on the first; otherwise each uses its processes'."""
    if inst.compute_instances is None:
        processes = _processes(inst.processes)
        return [
            SimInstance(
                uuid=inst.uuid or _derived_uuid("MIG-", gpu_uuid, inst.gi, inst.ci),
                profile=profiles[inst.profile],
                gpu_instance_id=inst.gi,
                compute_instance_id=inst.ci,
                sm_utilization=inst.sm_utilization,
                memory_used=_used(inst.memory_used, processes),
                processes=processes,
                mig_index=inst.mig_index,
            )
        ]
    devices = []
    for place, each in enumerate(inst.compute_instances):
        processes = _processes(each.processes)
        explicit = inst.memory_used if place == 0 else 0
        devices.append(
            SimInstance(
                uuid=each.uuid or _derived_uuid("MIG-", gpu_uuid, inst.gi, each.ci),
                profile=profiles[inst.profile],
                gpu_instance_id=inst.gi,
                compute_instance_id=each.ci,
                sm_utilization=inst.sm_utilization,
                memory_used=_used(explicit if inst.memory_used is not None else None, processes),
                processes=processes,
                compute_slices=each.slices,
                mig_index=each.mig_index,
            )
        )
    return devices
