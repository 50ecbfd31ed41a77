"""``ds01 admin slurm config``: gres.conf in ds01's order, the node's Gres=, the slurm.conf
fragment and the sacctmgr script from ds01's groups; the admin operation and its command.

Unit tests on a simulated host (gen_fixture); the real-Slurm checks of the same files are in
test_slurm_doctor.py (they share one running Slurm).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Conflict, Forbidden, Unavailable
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.cli.state import CliState
from ds01_slurm.admin_cli import add_admin_commands
from ds01_slurm.generate import Generated, HostFacts, generate
from ds01_slurm.generate_ops import slurm_config
from ds01_slurm.gres import GresMismatch, slurm_gpus
from tests.plugins.slurm.gen_fixture import A100, H100, MIG_MINORS, NODE, NODE_GRES, slurm_runtime

HOST = HostFacts(cpus=8, memory_mib=32000)
LIMITS = {
    "limits": {
        "defaults": {"max_gpu_equivalents": 1},
        "groups": {
            "Students": {"members": ["ds01ta", "ds01tb"], "max_gpu_equivalents": 0.5},
            "staff": {"max_gpu_equivalents": 2},
            "ldap-lab": {"max_gpu_equivalents": 1.5},
        },
        "users": {"ds01tc": {"group": "staff"}, "zed": {"max_cpus": 2}},
    }
}


@pytest.fixture
def runtime(tmp_path):
    rt = slurm_runtime(tmp_path, LIMITS)
    yield rt
    rt.close()


def made(runtime, **cfg) -> Generated:
    base = slurm_config(runtime)
    for key, value in cfg.items():
        setattr(base, key, value)
    return generate(runtime, base, host=HOST)


def records(gres_conf: str) -> list[str]:
    return [line for line in gres_conf.splitlines() if line.startswith("NodeName=")]


def test_gres_conf_lists_gpus_then_mig_instances_in_ds01_order_with_their_device_files(runtime):
    gen = made(runtime)
    lines = gen.gres_conf.splitlines()
    # autodetection is off before any record: Slurm must not reorder or rename them
    assert lines.index("AutoDetect=off") < lines.index(records(gen.gres_conf)[0])
    assert records(gen.gres_conf) == [
        # GPU 0 is /dev/nvidia1 on this host: the order is ds01's index, not the device minor
        f"NodeName={NODE} Name=gpu Type={A100} File=/dev/nvidia1",
        f"NodeName={NODE} Name=gpu Type={H100} File=/dev/nvidia0",
        f"NodeName={NODE} Name=gpu Type=3g.40gb MultipleFiles=/dev/nvidia2,"
        "/dev/nvidia-caps/nvidia-cap21,/dev/nvidia-caps/nvidia-cap22",
        f"NodeName={NODE} Name=gpu Type=3g.40gb MultipleFiles=/dev/nvidia2,"
        "/dev/nvidia-caps/nvidia-cap30,/dev/nvidia-caps/nvidia-cap31",
    ]
    # each record is preceded by a comment naming its GRES index, ds01 slot and UUID
    slots = slurm_gpus(runtime, slurm_config(runtime))
    for index, slot in enumerate(s.slot for s in slots):
        comment = lines[lines.index(records(gen.gres_conf)[index]) - 1]
        assert comment.startswith(f"# GRES {index}: ds01 ")
        assert f" {slot.slot_id} ({slot.uuid})" in comment
    assert [r["slot"] for r in gen.records] == ["0", "1", "2.1", "2.2"]


def test_node_line_counts_each_type_and_suggests_the_hosts_cpus_and_memory(runtime):
    gen = made(runtime)
    assert gen.node_gres == NODE_GRES == f"gpu:{A100}:1,gpu:{H100}:1,gpu:3g.40gb:2"
    comment, line = gen.node_line.splitlines()
    assert line == f"NodeName={NODE} Gres={NODE_GRES}"
    assert comment.startswith("#") and "CPUs=8 RealMemory=32000" in comment
    assert gen.slurm_conf.rstrip().endswith(line)


def test_untyped_whole_gpus_and_a_subset_of_gpus(runtime):
    gen = made(runtime, gres_types=False, gpus=[1, 2])
    assert records(gen.gres_conf)[0] == f"NodeName={NODE} Name=gpu File=/dev/nvidia0"
    assert len(records(gen.gres_conf)) == 3
    assert gen.node_gres == "gpu:1,gpu:3g.40gb:2"  # MIG profiles are always types


def test_the_same_inventory_gives_the_same_files(runtime, tmp_path):
    assert made(runtime) == made(runtime)
    other = slurm_runtime(tmp_path / "again", LIMITS)
    try:
        assert made(other).gres_conf.replace(str(tmp_path / "again"), "") == made(
            runtime
        ).gres_conf.replace(str(tmp_path), "")
    finally:
        other.close()


@pytest.mark.parametrize(
    "setting",
    [
        "GresTypes=gpu",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "PriorityType=priority/multifactor",
        "PriorityWeightFairshare=10000",
        "PrivateData=jobs,usage",
        "ProctrackType=proctrack/cgroup",
        "TaskPlugin=task/cgroup,task/affinity",
        "AccountingStorageTRES=gres/gpu",
        "#   ConstrainDevices=yes",
    ],
)
def test_slurm_conf_fragment_sets_each_line_and_explains_it(runtime, setting):
    lines = made(runtime).slurm_conf.splitlines()
    assert setting in lines
    # the line is explained by a comment right above it (or is the cgroup.conf comment)
    above = lines[lines.index(setting) - 1]
    assert above.startswith("#"), f"{setting} has no comment above it"


def test_sacctmgr_script_makes_an_account_per_group_with_shares_from_gpu_quota(runtime):
    script = made(runtime).sacctmgr
    assert script.startswith("#!/bin/sh\n")
    assert "add account students Parent=ds01 Fairshare=100 " in script  # 2 x 0.5 GPU
    assert "add user ds01ta Account=students Fairshare=50" in script
    assert "add user ds01tb Account=students Fairshare=50" in script
    assert "add account staff Parent=ds01 Fairshare=200 " in script
    assert "add user ds01tc Account=staff Fairshare=200" in script
    assert "add user zed Account=ds01-default Fairshare=100" in script
    # a group with no members in the configuration (LDAP's at run time) gets a template
    assert "add account ldap-lab Parent=ds01 Fairshare=150 " in script
    assert re.search(r"^#   add user USER Account=ldap-lab Fairshare=150$", script, re.M)
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_sacctmgr_script_runs_each_command_and_fails_only_when_a_setting_fails(runtime, tmp_path):
    """Run the script with a stand-in sacctmgr that records its arguments (no slurmdbd here):
    the quoting reaches sacctmgr intact, a failing `add` (already there) is not an error,
    a failing `modify` is."""
    script = tmp_path / "sacctmgr-ds01.sh"
    script.write_text(made(runtime).sacctmgr)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "sacctmgr"
    fake.write_text(
        '#!/bin/sh\nprintf "%s|" "$@" >> "$LOG"; echo >> "$LOG"\n'
        'case "$2" in add) exit 1;; modify) exit "${FAIL_MODIFY:-0}";; esac\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    assert "-i|add|account|ds01|Description=ds01 users|Organization=ds01|" in calls
    assert "-i|add|account|students|Parent=ds01|Fairshare=100|Description=group Students|" in (
        calls
    )
    assert "-i|modify|user|where|name=ds01ta|account=students|set|Fairshare=50|" in calls
    failing = subprocess.run(
        ["sh", str(script)], env={**env, "FAIL_MODIFY": "1"}, capture_output=True, text=True
    )
    assert failing.returncode == 1


def test_mig_minors_missing_or_unreadable_is_one_clear_refusal(runtime, tmp_path):
    cfg = slurm_config(runtime)
    minors = Path(str(cfg.mig_minors_file))
    minors.write_text("gpu2/gi1/access 21\n")
    with pytest.raises(GresMismatch, match="gpu2/gi1/ci0/access"):
        generate(runtime, cfg, host=HOST)
    admin = ServiceContext(runtime, Caller("root", 0, True))
    with pytest.raises(Conflict, match="no MIG device minor for gpu2/gi1/ci0/access"):
        call(admin, "slurm.generate_config")
    minors.unlink()
    with pytest.raises(Unavailable, match=r"cannot read the MIG device minors .*NVIDIA driver"):
        call(admin, "slurm.generate_config")


def test_no_gpu_for_slurm_is_refused(tmp_path):
    rt = slurm_runtime(tmp_path, {"plugins": {"slurm": {"gpus": [7]}}})
    try:
        with pytest.raises(Conflict, match=r"no GPU for Slurm.*GPUs \[7\]"):
            call(ServiceContext(rt, Caller("root", 0, True)), "slurm.generate_config")
    finally:
        rt.close()


def test_the_operation_is_for_admins_only(runtime):
    with pytest.raises(Forbidden, match="admin operation"):
        call(ServiceContext(runtime, Caller("ds01ta", 12345, False)), "slurm.generate_config")
    data = call(ServiceContext(runtime, Caller("root", 0, True)), "slurm.generate_config")
    assert data["node"] == NODE and data["gres_conf"].count("NodeName=") == 4


# -- the command -------------------------------------------------------------------------------


def cli_for(runtime) -> tuple[click.Group, CliState]:
    """The root group with an ``admin`` group, as the core's; a state running in process on
    ``runtime`` (the command is the plugin's, the operation reached through the catalogue)."""
    root = click.Group("ds01")
    root.add_command(click.Group("admin"))
    add_admin_commands(root)
    state = CliState(None, False)
    state.__dict__["runtime"] = runtime
    state.__dict__["context"] = ServiceContext(runtime, Caller("root", 0, True))
    return root, state


def test_admin_slurm_config_prints_the_parts_under_headings(runtime):
    root, state = cli_for(runtime)
    assert "slurm" in root.commands["admin"].commands  # under ds01 admin, not at the top
    result = CliRunner().invoke(root, ["admin", "slurm", "config"], obj=state)
    assert result.exit_code == 0, result.output
    headings = re.findall(r"^==> (.*) <==$", result.output, re.M)
    assert headings == [
        "gres.conf",
        "slurm.conf: this node",
        "slurm.conf fragment",
        "sacctmgr script",
    ]
    assert "AutoDetect=off" in result.output


def test_admin_slurm_config_writes_the_files_and_says_what_next(runtime, tmp_path):
    root, state = cli_for(runtime)
    out = tmp_path / "out" / "slurm"
    result = CliRunner().invoke(
        root, ["admin", "slurm", "config", "--output-dir", str(out)], obj=state
    )
    assert result.exit_code == 0, result.output
    gen = made(runtime)
    assert (out / "gres.conf").read_text() == gen.gres_conf
    assert (out / "sacctmgr-ds01.sh").read_text() == gen.sacctmgr
    assert "SelectType=select/cons_tres" in (out / "slurm.conf.ds01").read_text()
    assert stat.S_IMODE((out / "sacctmgr-ds01.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "gres.conf").stat().st_mode) == 0o644
    assert f"NodeName={NODE} Gres={NODE_GRES}" in result.output
    assert "restart slurmd" in result.output and "scontrol reconfigure" in result.output


def test_admin_slurm_config_errors_are_one_line_with_the_services_exit_code(runtime, tmp_path):
    from ds01_core.transports.cli.group import Ds01Group

    Path(str(slurm_config(runtime).mig_minors_file)).unlink()
    root, state = cli_for(runtime)
    real = Ds01Group("ds01", commands=root.commands)  # the core's one-line error handling
    result = CliRunner().invoke(real, ["admin", "slurm", "config"], obj=state)
    assert result.exit_code == Unavailable.exit_code
    assert result.output.count("\n") == 1 and result.output.startswith("Error: cannot read")
    blocked = tmp_path / "file"
    blocked.write_text("")
    Path(str(slurm_config(runtime).mig_minors_file)).write_text(
        "".join(f"{name} {minor}\n" for name, minor in MIG_MINORS.items())
    )
    result = CliRunner().invoke(
        real, ["admin", "slurm", "config", "--output-dir", str(blocked / "slurm")], obj=state
    )
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: cannot write into {blocked}/slurm"
    ) and "Traceback" not in (result.output)
