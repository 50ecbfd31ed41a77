"""Checks of what is there: NVML itself, the GPUs, their identity, memory, MIG layout, processes.

Each function sets one provider reading beside NVML's raw answers and gives a verdict
(:func:`~ds01_core.services.gpu_selftest.report.judged`), naming every difference it finds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ds01_core.domain.model import Gpu, GpuProcess, GpuSlot
from ds01_core.services.gpu_selftest.answers import Answer
from ds01_core.services.gpu_selftest.raw import RawGpu, RawMig, text
from ds01_core.services.gpu_selftest.report import Check, judged

GIB = 1024**3


def gpu_subject(index: int) -> str:
    return f"GPU {index}"


def mig_subject(gpu_index: int, mig: RawMig) -> str:
    """``slot 5.3`` (``5.3.1`` for a second compute instance), as ``ds01 gpu status`` names it."""
    gi, ci = mig.gpu_instance_id, mig.compute_instance_id
    if not gi.ok:
        return f"GPU {gpu_index} MIG index {mig.index}"
    suffix = f".{ci.value}" if ci.ok and ci.value else ""
    return f"slot {gpu_index}.{gi.value}{suffix}"


def provider_gpu(gpus: Answer, index: int) -> tuple[Gpu | None, str]:
    """The provider's GPU ``index``, or None and why (as the provider column shows it)."""
    if not gpus.ok:
        return None, f"error: {gpus.error}"
    found = next((g for g in gpus.value if g.index == index), None)
    return found, ("" if found is not None else "left out")


def check_system(system: dict[str, Answer], provider: Answer) -> Check:
    """NVML answers at all, and the provider opens on it."""
    nvml = ", ".join(
        f"{label} {answer.describe(text)}"
        for label, answer in (
            ("driver", system["driver"]),
            ("NVML", system["nvml"]),
            ("CUDA", system["cuda"]),
            ("GPUs:", system["count"]),
        )
    )
    failed = [f"{k}: {a.error}" for k, a in system.items() if a.error and not a.unsupported]
    if not provider.ok:
        failed.append(f"the provider did not open: {provider.error}")
    shown = provider.value.description if provider.ok else provider.describe()
    return judged("nvml", "host", failed=failed, provider=shown, nvml=nvml)


def check_gpus(raw: Sequence[RawGpu], gpus: Answer) -> Check:
    """Every GPU NVML can name is one the provider lists, and no other."""
    named = {g.index for g in raw if g.uuid.ok}
    nvml = f"{len(raw)} GPUs, indices {_ranges(named)}"
    if not gpus.ok:
        return judged("gpus", "host", failed=[f"the provider's listing: {gpus.error}"], nvml=nvml)
    listed = {g.index for g in gpus.value}
    differs = []
    for g in raw:
        if g.index not in listed:
            why = g.uuid.error or g.handle.error
            differs.append(
                f"GPU {g.index} is left out by the provider" + (f" (NVML: {why})" if why else "")
            )
    differs += [f"the provider lists GPU {i}, NVML does not" for i in sorted(listed - named)]
    return judged(
        "gpus",
        "host",
        differs=differs,
        failed=[f"GPU {g.index}: {g.handle.error}" for g in raw if not g.handle.ok],
        provider=f"{len(listed)} GPUs, indices {_ranges(listed)}",
        nvml=nvml,
    )


def check_identity(raw: RawGpu, gpus: Answer) -> Check:
    """UUID and model name, as read by the provider and as NVML gives them."""
    gpu, absent = provider_gpu(gpus, raw.index)
    shown = f"{gpu.uuid}, {gpu.model}" if gpu is not None else absent
    subject = gpu_subject(raw.index)
    missing = [] if gpu is None else [f"the provider lists GPU {raw.index}, NVML has no handle"]
    if not raw.handle.ok:
        return judged(
            "identity",
            subject,
            failed=[f"handle: {raw.handle.error}"],
            differs=missing,
            provider=shown,
            nvml=raw.handle.describe(),
        )
    nvml = f"{raw.uuid.describe(text)}, {raw.name.describe(text)}"
    failed = [
        f"{what}: {a.error}"
        for what, a in (("UUID", raw.uuid), ("name", raw.name))
        if a.error and not a.unsupported
    ]
    differs = []
    if gpu is None:
        differs.append(f"the provider has no GPU {raw.index} ({absent})")
    else:
        if raw.uuid.ok and text(raw.uuid.value) != gpu.uuid:
            differs.append(f"UUID: the provider's {gpu.uuid}, NVML's {text(raw.uuid.value)}")
        if raw.name.ok and text(raw.name.value) != gpu.model:
            differs.append(f"model: the provider's {gpu.model!r}, NVML's {text(raw.name.value)!r}")
    return judged("identity", subject, failed=failed, differs=differs, provider=shown, nvml=nvml)


def check_minor(raw: RawGpu, gpus: Answer, dev_dir: str | None) -> Check:
    """The device minor number (``/dev/nvidiaN``), which need not equal the NVML index."""
    answer = raw.minor_number
    gpu, _absent = provider_gpu(gpus, raw.index)
    theirs = getattr(gpu, "minor_number", None)
    provider = "-" if theirs is None else str(theirs)
    if not answer.ok:
        return judged(
            "minor number",
            gpu_subject(raw.index),
            failed=[] if answer.unsupported else [str(answer.error)],
            unsupported=answer.unsupported,
            note=answer.error or "",
            provider=provider,
            nvml=answer.describe(),
        )
    minor = int(answer.value)
    nvml = f"{minor} (/dev/nvidia{minor})"
    differs = []
    if theirs is not None and int(theirs) != minor:
        differs.append(f"the provider's minor number {theirs}, NVML's {minor}")
    if dev_dir is not None and not os.path.exists(os.path.join(dev_dir, f"nvidia{minor}")):
        differs.append(f"{dev_dir}/nvidia{minor} does not exist")
    note = "" if minor == raw.index else f"not the NVML index {raw.index}"
    return judged(
        "minor number",
        gpu_subject(raw.index),
        differs=differs,
        note=note,
        provider=provider,
        nvml=nvml,
    )


def check_memory(raw: RawGpu, gpus: Answer) -> Check:
    """Total memory (used memory moves between two reads, so it is shown, not compared)."""
    gpu, absent = provider_gpu(gpus, raw.index)
    if not raw.memory.ok:
        return judged(
            "memory",
            gpu_subject(raw.index),
            failed=[] if raw.memory.unsupported else [str(raw.memory.error)],
            unsupported=raw.memory.unsupported,
            provider=absent if gpu is None else _memory(gpu.memory_used, gpu.memory_total),
            nvml=raw.memory.describe(),
        )
    total, used = int(raw.memory.value.total), int(raw.memory.value.used)
    differs = []
    if gpu is not None and gpu.memory_total != total:
        differs.append(f"total: the provider's {gpu.memory_total} bytes, NVML's {total}")
    return judged(
        "memory",
        gpu_subject(raw.index),
        differs=differs,
        provider=absent if gpu is None else _memory(gpu.memory_used, gpu.memory_total),
        nvml=_memory(used, total),
    )


def check_mig(raw: RawGpu, gpus: Answer) -> Check:
    """MIG mode and devices: every device NVML lists (by its MIG index) is one of the
    provider's slots, with the same instance ids and the compute instance's slices."""
    gpu, absent = provider_gpu(gpus, raw.index)
    subject = gpu_subject(raw.index)
    mode = raw.mig_mode
    if not mode.ok:
        failed = [] if mode.unsupported else [f"MIG mode: {mode.error}"]
        differs = ["the provider has MIG on"] if gpu is not None and gpu.mig_enabled else []
        return judged(
            "mig",
            subject,
            failed=failed,
            differs=differs,
            unsupported=mode.unsupported,
            note="no MIG on this GPU" if mode.unsupported else "",
            provider=absent or ("on" if gpu and gpu.mig_enabled else "off"),
            nvml=mode.describe(),
        )
    current, pending = int(mode.value[0]), int(mode.value[1])
    note = "" if current == pending else "a MIG mode change is pending (needs a GPU reset)"
    nvml = "on" if raw.mig_enabled else "off"
    if raw.mig_enabled:
        indices = ",".join(str(m.index) for m in raw.migs)
        nvml += f": {len(raw.migs)} devices at MIG index {indices}" if raw.migs else ": no devices"
    if gpu is None:
        return judged(
            "mig",
            subject,
            differs=[f"the provider has no GPU {raw.index}"],
            provider=absent,
            nvml=nvml,
        )
    differs = []
    if gpu.mig_enabled != raw.mig_enabled:
        differs.append(
            f"MIG mode: the provider's {'on' if gpu.mig_enabled else 'off'}, "
            f"NVML's {nvml.split(':')[0]}"
        )
    elif raw.mig_enabled:
        differs += _compare_migs(raw.migs, [s for s in gpu.slots if s.kind == "mig"])
    provider = "on" if gpu.mig_enabled else "off"
    if gpu.mig_enabled:
        ids = ",".join(str(s.gpu_instance_id) for s in gpu.slots)
        provider += f": {len(gpu.slots)} slots, GI {ids}" if gpu.slots else ": no slots"
    return judged(
        "mig",
        subject,
        failed=raw.mig_errors,
        differs=differs,
        note=note,
        provider=provider,
        nvml=nvml,
    )


def _compare_migs(migs: Sequence[RawMig], slots: Sequence[GpuSlot]) -> list[str]:
    differs = []
    by_uuid = {s.uuid: s for s in slots}
    seen = set()
    for mig in migs:
        if not mig.uuid.ok:
            differs.append(f"MIG index {mig.index}: NVML gives no UUID ({mig.uuid.error})")
            continue
        uuid = text(mig.uuid.value)
        seen.add(uuid)
        slot = by_uuid.get(uuid)
        if slot is None:
            differs.append(f"{uuid} (MIG index {mig.index}) is left out by the provider")
            continue
        ids = (_value(mig.gpu_instance_id), _value(mig.compute_instance_id))
        if ids != (slot.gpu_instance_id, slot.compute_instance_id):
            differs.append(
                f"{uuid}: instance ids GI/CI {slot.gpu_instance_id}/{slot.compute_instance_id} "
                f"in the provider, {ids[0]}/{ids[1]} in NVML"
            )
        slices = getattr(mig.attributes.value, "computeInstanceSliceCount", None)
        if mig.attributes.ok and slices is not None and int(slices) != slot.compute_slices:
            differs.append(
                f"{uuid}: the provider weighs {slot.compute_slices} slices, its compute "
                f"instance has {int(slices)}"
            )
        index = getattr(slot, "mig_index", None)
        if index is not None and int(index) != mig.index:
            differs.append(f"{uuid}: MIG index {index} in the provider, {mig.index} in NVML")
    differs += [f"the provider's slot {u} is not listed by NVML" for u in by_uuid if u not in seen]
    return differs


def check_processes(
    subject: str, uuid: str, before: Answer, after: Answer, processes: Answer
) -> Check:
    """The processes on one leaf: a PID NVML listed both before and after the provider's read
    must be in the provider's list; one NVML listed neither time must not."""
    raw_failed = [a.error for a in (before, after) if a.error and not a.unsupported]
    if not processes.ok:
        mine: dict[int, Any] = {}
        provider = processes.describe()
    else:
        mine = {p.pid: p.used_memory for p in processes.value if p.slot_uuid == uuid}
        provider = _pids(mine)
    failed = []
    if raw_failed:
        failed.append(f"NVML: {raw_failed[0]} (the provider reports {len(mine)} processes there)")
    if not processes.ok:
        failed.append(f"the provider's process listing: {processes.error}")
    if failed:
        return judged(
            "processes",
            subject,
            failed=failed,
            provider=provider,
            nvml=after.describe(_pids) if after.ok else before.describe(_pids),
        )
    if before.unsupported or after.unsupported:
        return judged(
            "processes", subject, unsupported=True, provider=provider, nvml=after.describe()
        )
    steady = set(before.value) & set(after.value)
    seen = set(before.value) | set(after.value)
    differs = [f"PID {p} is on it in NVML, not in the provider" for p in sorted(steady - set(mine))]
    differs += [f"PID {p} is in the provider, not in NVML" for p in sorted(set(mine) - seen)]
    return judged(
        "processes",
        subject,
        differs=differs,
        note=after.note or "",
        provider=provider,
        nvml=_pids(after.value),
    )


def leaf_processes(procs: Sequence[GpuProcess]) -> dict[str, list[GpuProcess]]:
    found: dict[str, list[GpuProcess]] = {}
    for p in procs:
        found.setdefault(p.slot_uuid, []).append(p)
    return found


def _pids(pids: dict[int, Any]) -> str:
    if not pids:
        return "none"
    return ", ".join(
        str(pid) if used is None else f"{pid} ({used / GIB:.1f}G)"
        for pid, used in sorted(pids.items())
    )


def _value(answer: Answer) -> Any:
    return int(answer.value) if answer.ok else None


def mig_layout(raw: Sequence[RawGpu]) -> list[dict[str, Any]]:
    """Every MIG device as NVML lists it: GPU, NVML MIG index, instance ids, name, UUID."""
    return [
        {
            "gpu": g.index,
            "mig_index": m.index,
            "gpu_instance_id": _value(m.gpu_instance_id),
            "compute_instance_id": _value(m.compute_instance_id),
            "name": text(m.name.value) if m.name.ok else m.name.describe(),
            "uuid": text(m.uuid.value) if m.uuid.ok else m.uuid.describe(),
        }
        for g in raw
        for m in g.migs
    ]


def _memory(used: int, total: int) -> str:
    return f"{used / GIB:.1f}/{total / GIB:.1f} GiB"


def _ranges(indices: set[int]) -> str:
    return ",".join(str(i) for i in sorted(indices)) or "none"
