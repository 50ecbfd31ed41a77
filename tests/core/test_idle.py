"""Idleness at its edges: each signal at its threshold, unknown signals (never idle), the idle
streak, the idle window, the built-in ``on_idle`` at the timeout, and the runtime cap at the cap.

Each test pins one boundary that a one-character change (``>=`` to ``>``, counting "nothing
known" as idle) would move.
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from ds01_core.builtin.idle_policy import on_idle
from ds01_core.cycle.activity import Activity, gpu_active
from ds01_core.cycle.idle import GpuView, IdleState, idle_verdict, signals, update_streak
from ds01_core.cycle.runtime_limits import runtime_verdict
from ds01_core.domain.model import GpuProcess, GpuSlot, Workload
from ds01_core.domain.policy import Policy
from ds01_core.domain.state.notices_sent import Subject, first_notice, sent_at
from ds01_core.domain.state.store import StateStore
from ds01_core.framework.hookspecs import hookimpl
from ds01_core.framework.runtime import load_runtime

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POLICY = Policy(
    idle_timeout=600.0,
    max_runtime=3600.0,
    stop_grace=1.0,
    created_timeout=None,
    hold_after_stop=None,
    gpu_threshold=5.0,
    cpu_threshold=0.05,
    network_threshold=2048.0,
    warn_at=(0.8,),
    demand_factor=1.0,
)
NO_GPU = GpuView({}, [], {})


def container(cid: str = "c1", slots: list[str] | None = None) -> Workload:
    return Workload(
        "container", cid, cid, "docker", "ann", "label", "running", gpu_slots=slots or []
    )


def act(cpu: float | None = None, net: float | None = None, new: int | None = None) -> Activity:
    return Activity(cpu_cores=cpu, net_bytes_per_s=net, new_processes=new, seconds=30.0)


# -- each signal at its threshold ----------------------------------------------------------------


def test_cpu_at_its_threshold_is_active_and_just_below_is_not():
    assert signals(container(), act(cpu=0.05), POLICY, NO_GPU)["cpu"] is True
    assert signals(container(), act(cpu=0.0499), POLICY, NO_GPU)["cpu"] is False


def test_network_at_its_threshold_is_active_and_just_below_is_not():
    assert signals(container(), act(net=2048.0), POLICY, NO_GPU)["network"] is True
    assert signals(container(), act(net=2047.9), POLICY, NO_GPU)["network"] is False


def test_one_new_process_is_active_and_none_is_not():
    assert signals(container(), act(new=1), POLICY, NO_GPU)["processes"] is True
    assert signals(container(), act(new=0), POLICY, NO_GPU)["processes"] is False


def slot(utilization: float | None) -> GpuSlot:
    return GpuSlot(
        uuid="GPU-1",
        kind="gpu",
        gpu_index=0,
        gpu_uuid="GPU-1",
        model="sim",
        compute_slices=7,
        total_slices=7,
        memory_total=1 << 30,
        utilization=utilization,
    )


def test_gpu_utilisation_at_its_threshold_is_active_and_just_below_is_not():
    at = GpuView({"GPU-1": slot(5.0)}, [], {})
    below = GpuView({"GPU-1": slot(4.9)}, [], {})
    assert signals(container(slots=["GPU-1"]), None, POLICY, at)["gpu"] is True
    assert signals(container(slots=["GPU-1"]), None, POLICY, below)["gpu"] is False
    assert gpu_active(["GPU-1"], {"GPU-1": slot(5.0)}, [], None, 5.0) is True


def test_a_signal_that_cannot_be_read_is_unknown_not_idle():
    sig = signals(container(), None, POLICY, NO_GPU)  # no earlier sample, no GPU
    assert sig == {"gpu": None, "cpu": None, "network": None, "processes": None}
    sig = signals(container(), act(cpu=None, net=10.0), POLICY, NO_GPU)
    assert (sig["cpu"], sig["network"]) == (None, False)


# -- the streak ------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    store = StateStore(tmp_path / "state.db")
    yield store.db
    store.close()


UNKNOWN = {"gpu": None, "cpu": None, "network": None, "processes": None}
IDLE = {"gpu": None, "cpu": False, "network": False, "processes": None}
ACTIVE = {"gpu": None, "cpu": True, "network": False, "processes": None}


def test_nothing_known_never_counts_as_idle(db):
    w = container()
    for minute in range(5):
        assert update_streak(db, w, UNKNOWN, NOW + dt.timedelta(minutes=minute), 30.0) == (0, None)


def test_nothing_known_ends_an_idle_streak(db):
    w = container()
    assert update_streak(db, w, IDLE, NOW, 30.0)[0] == 1
    assert update_streak(db, w, UNKNOWN, NOW + dt.timedelta(seconds=30), 30.0) == (0, None)


def test_known_signals_all_below_threshold_grow_the_streak_from_the_first_sample(db):
    w = container()
    started = NOW - dt.timedelta(seconds=30)  # the first idle sample began a cycle earlier
    assert update_streak(db, w, IDLE, NOW, 30.0) == (1, started)
    later = NOW + dt.timedelta(seconds=30)
    assert update_streak(db, w, IDLE, later, 30.0) == (2, started)


def test_activity_ends_the_streak_and_rearms_the_idle_warnings(db):
    w = container()
    update_streak(db, w, IDLE, NOW, 30.0)
    first_notice(db, Subject.container(w.id), "idle", "0.8", NOW)
    first_notice(db, Subject.container(w.id), "runtime", "0.8", NOW)
    assert update_streak(db, w, ACTIVE, NOW + dt.timedelta(seconds=30), 30.0) == (0, None)
    assert sent_at(db, Subject.container(w.id), "idle", "0.8") is None
    assert sent_at(db, Subject.container(w.id), "runtime", "0.8") == NOW  # not idle's to re-arm


# -- the decision: window, timeout, cap ------------------------------------------------------------


def test_the_built_in_policy_stops_at_the_timeout_not_only_past_it():
    assert on_idle(600.0, POLICY) == "stop"
    assert on_idle(599.9, POLICY) == "warn"
    assert on_idle(10_000.0, attrs.evolve(POLICY, idle_timeout=None)) == "none"


@pytest.fixture
def runtime(tmp_config):
    runtime = load_runtime(str(tmp_config({"lifecycle": {"idle_window": 3, "start_grace": "60s"}})))
    yield runtime
    runtime.close()


def test_the_idle_window_is_reached_at_its_count_of_cycles(runtime):
    w = attrs.evolve(container(), idle_seconds=900.0)
    state = IdleState(cycles=3, since=NOW, signals=IDLE)
    verdict = idle_verdict(runtime, w, POLICY, state, 3600.0, set())
    assert verdict is not None and (verdict.action, verdict.limit) == ("stop", 600.0)
    short = attrs.evolve(state, cycles=2)
    assert idle_verdict(runtime, w, POLICY, short, 3600.0, set()) is None


def test_start_grace_keepalive_and_exemption_hold_off_the_idle_decision(runtime):
    w = attrs.evolve(container(), idle_seconds=900.0)
    state = IdleState(cycles=5, since=NOW, signals=IDLE)
    assert idle_verdict(runtime, w, POLICY, state, 59.0, set()) is None
    assert idle_verdict(runtime, w, POLICY, state, 60.0, set()) is not None
    assert idle_verdict(runtime, w, POLICY, state, 3600.0, {"keepalive"}) is None
    assert idle_verdict(runtime, w, POLICY, state, 3600.0, {"exempt_idle"}) is None
    assert idle_verdict(runtime, w, POLICY, state, 3600.0, {"exempt_runtime"}) is not None


def test_the_on_idle_hook_gets_the_typed_policy_in_force(runtime):
    seen = []

    class Watches:
        @hookimpl(tryfirst=True)
        def on_idle(self, policy, idle_seconds):
            seen.append((policy, idle_seconds))

    runtime.plugins.pm.register(Watches(), "watches")
    halved = attrs.evolve(POLICY, idle_timeout=300.0, demand_factor=0.5)
    w = attrs.evolve(container(), idle_seconds=301.0)
    verdict = idle_verdict(runtime, w, halved, IdleState(3, NOW, IDLE), 3600.0, set())
    assert seen == [(halved, 301.0)] and isinstance(seen[0][0], Policy)
    assert verdict is not None and verdict.action == "stop"  # the built-in, after it abstained


def test_the_runtime_cap_stops_at_the_cap_and_warns_below_it():
    at = runtime_verdict(POLICY, 3600.0, set())
    assert at is not None and (at.action, at.kind, at.limit) == ("stop", "runtime", 3600.0)
    below = runtime_verdict(POLICY, 3599.9, set())
    assert below is not None and below.action == "warn"
    assert runtime_verdict(POLICY, 3600.0, {"exempt_runtime"}) is None
    assert runtime_verdict(POLICY, None, set()) is None  # no start time known


# -- on MIG (no utilisation), the container's own processes on its slot are the GPU signal ------


def proc(pid: int = 10, slot_uuid: str = "GPU-1", memory: int | None = 1 << 20) -> GpuProcess:
    return GpuProcess(pid, slot_uuid, memory)


MIG = {"GPU-1": slot(None)}  # MIG slices report no utilisation


def test_on_mig_a_process_of_the_container_holding_memory_is_gpu_activity():
    assert gpu_active(["GPU-1"], MIG, [proc()], frozenset({10}), 5.0) is True
    assert gpu_active(["GPU-1"], MIG, [proc(memory=1)], frozenset({10}), 5.0) is True
    assert gpu_active(["GPU-1"], MIG, [proc(memory=None)], frozenset({10}), 5.0) is True
    # pids unknown (a container ds01 cannot look into): any process on its slot counts
    assert gpu_active(["GPU-1"], MIG, [proc()], None, 5.0) is True


def test_on_mig_other_slots_other_containers_and_empty_processes_are_not_activity():
    assert gpu_active(["GPU-1"], MIG, [], frozenset({10}), 5.0) is False
    assert gpu_active(["GPU-1"], MIG, [proc(slot_uuid="GPU-2")], frozenset({10}), 5.0) is False
    assert gpu_active(["GPU-1"], MIG, [proc(pid=99)], frozenset({10}), 5.0) is False
    assert gpu_active(["GPU-1"], MIG, [proc(memory=0)], frozenset({10}), 5.0) is False


def test_a_slot_the_inventory_does_not_know_is_judged_by_its_processes():
    assert gpu_active(["GPU-1"], {}, [proc()], frozenset({10}), 5.0) is True
    assert gpu_active(["GPU-1"], {}, [], frozenset({10}), 5.0) is False


def test_a_container_without_gpu_slots_has_no_gpu_signal():
    assert gpu_active([], MIG, [proc()], frozenset({10}), 5.0) is None


def test_a_busy_whole_gpu_is_enough_whatever_the_other_slots():
    slots = {"GPU-1": slot(0.0), "GPU-2": attrs.evolve(slot(50.0), uuid="GPU-2")}
    assert gpu_active(["GPU-1", "GPU-2"], slots, [], None, 5.0) is True
    assert gpu_active(["GPU-1"], slots, [proc()], None, 5.0) is False  # utilisation decides


# -- an unknown GPU signal of a container that holds GPUs is never idle --------------------------


def test_an_unknown_gpu_signal_of_a_gpu_container_ends_the_idle_streak(db):
    w = container(slots=["GPU-1"])
    idle_gpu = {**IDLE, "gpu": False}
    assert update_streak(db, w, idle_gpu, NOW, 30.0)[0] == 1
    # NVML could not read its GPU this cycle; CPU and network idle do not make it idle
    assert update_streak(db, w, IDLE, NOW + dt.timedelta(seconds=30), 30.0) == (0, None)


def test_a_slot_whose_processes_were_not_read_is_unknown():
    read = frozenset({"GPU-2"})
    assert gpu_active(["GPU-1"], MIG, [], frozenset({10}), 5.0, read=read) is None
    assert gpu_active(["GPU-1"], MIG, [proc()], frozenset({10}), 5.0, read=read) is True
    assert gpu_active(["GPU-1"], MIG, [], frozenset({10}), 5.0, read={"GPU-1"}) is False
    # a slot the listing does not name: gone when the listing is complete, unknown otherwise
    assert gpu_active(["GPU-1"], {}, [], None, 5.0, complete=False) is None
    # a known utilisation decides whatever the process query said
    assert gpu_active(["GPU-1"], {"GPU-1": slot(0.0)}, [], None, 5.0, read=read) is False
