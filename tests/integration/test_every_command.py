"""Every ``ds01`` command, run for real by a plain user, by a member of the admin group and by
root, against a real ``ds01-api`` and the real engine.

The list of commands comes from the click command tree (built-in and installed plugins'), so a
new command without a case here fails :func:`test_every_command_has_a_case`. Nothing may print
a traceback; plain users get their own data, and a clear refusal (exit 2, one ``Error:`` line
naming the admin group) for admin commands. The three callers run at the same time; each one's
run of admin commands (which change what every caller sees) happens alone, between the others'
commands (see :class:`TurnLock`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from tests.helpers.config import write_config
from tests.helpers.gateway import running_gateway
from tests.helpers.servers import running_api
from tests.helpers.user_cli import run_as

pytestmark = pytest.mark.integration

Args = list[str] | Callable[["Session"], list[str]]


@attrs.frozen
class Case:
    """How to run one command, and what each kind of caller must get."""

    command: str
    args: Args = attrs.Factory(list)
    admin: bool = False  # plain users are refused
    ok_codes: frozenset[int] = frozenset({0})
    expect: str | None = None  # in the output of a successful run


def _token_id(session: Session) -> list[str]:
    """The token the same caller just made (``ds01 token list --json`` as that caller)."""
    listed = session.run(Case("token list", ["--json"]))
    return [t["id"] for t in json.loads(listed.stdout) if t["name"] == session.box][-1:] or ["0"]


def _newest_grant_id(session: Session) -> list[str]:
    """The exemption the same caller just set (a plain user set none: any id is refused)."""
    grants = json.loads(session.root("admin", "exempt", "list", "--json").stdout)
    return [str(max((g["id"] for g in grants if g["target"] == "user:ds01ta"), default=0))]


CASES: tuple[Case, ...] = (
    Case("plugins"),
    Case("config check", lambda s: [str(s.readable_config)], expect="OK"),
    Case("config show", ["--user", "{me}"]),
    Case("quota", expect="GPU-equivalents"),
    Case("gpu status", expect="GPU provider"),
    Case("gpu queue"),
    Case("gpu health", expect="No GPU health recorded yet"),  # no daemon runs here
    Case("gpu selftest", ["--interval", "0.1"], admin=True, expect="GPU self-test"),
    Case("workloads", expect="workload(s)"),
    Case(
        "container create",
        ["{box}", "--image", "ds01-test:busybox", "--cpu-only", "sleep", "3600"],
        expect="created {box}",
    ),
    Case("container start", ["{box}"], expect="started {box}"),
    Case("container list", ["--json"], expect="{box}"),
    Case("container stats", expect="{box}"),
    Case("container exec", ["{box}", "echo", "from-{me}"], expect="from-{me}"),
    Case("container logs", ["{box}", "--tail", "5"]),
    Case("keepalive", ["{box}", "--for", "30m"], expect="will not be stopped"),
    Case("events", ["--limit", "5"]),
    Case("container stop", ["{box}", "--timeout", "1s"], expect="stopped {box}"),
    Case("container remove", ["{box}"], expect="removed {box}"),
    Case(
        "admin override set",
        ["ds01ta", "max_gpu_equivalents=2", "--expires", "1d", "--reason", "test"],
        admin=True,
        expect="set for ds01ta",
    ),
    Case("admin override list", admin=True, expect="ds01ta"),
    Case("admin override remove", ["--user", "ds01ta"], admin=True, expect="removed"),
    Case(
        "admin exempt set",
        ["--user", "ds01ta", "--expires", "1d", "--reason", "test"],
        admin=True,
        expect="user:ds01ta",
    ),
    Case("admin exempt list", admin=True, expect="user:ds01ta"),
    Case("admin exempt remove", _newest_grant_id, admin=True, expect="removed 1"),
    Case(
        "admin bare-metal grant",
        ["ds01ta", "1h", "--reason", "test"],
        admin=True,
        expect="may use the GPUs directly",
    ),
    Case("admin bare-metal list", admin=True, expect="ds01ta"),
    Case("admin bare-metal revoke", ["ds01ta"], admin=True, expect="ds01ta"),
    Case("admin labels migrate", ["--dry-run"], admin=True),
    # the doctor finds problems on a test host (exit 1); what matters is that it runs
    Case("admin doctor", admin=True, ok_codes=frozenset({0, 1}), expect="problem"),
    # released for a minute at most, and resumed at once (the simulated host holds no device)
    Case(
        "admin gpu release",
        ["--minutes", "1", "--wait", "0"],
        admin=True,
        expect="GPUs released until",
    ),
    Case("admin gpu holders", admin=True, expect="ds01 GPU access: released"),
    Case("admin gpu resume", admin=True, expect="GPUs resumed"),
    # plugins' commands (ds01-notify, ds01-ldap, ds01-cgroups)
    Case("notify prefs", expect="terminal"),
    # nobody is logged in here, so the terminal channel reports "not delivered" (exit 1)
    Case("notify test", ok_codes=frozenset({0, 1}), expect="audit-log  yes"),
    # ds01-accounting: no daemon ran here, so no records: the caller's own (empty) usage
    Case("usage", expect="GPU usage of"),
    # no carbon source is configured here: said so, for everyone
    Case("carbon status", expect="No carbon-intensity source is configured"),
    Case("carbon report", expect="CO₂ from"),
    # the monthly report is for admins (a plain user is refused with exit 2)
    Case("report monthly", admin=True, expect="ds01 usage report"),
    # ds01-projects: no gateway runs here, so setup and doctor report it broken (exit 1);
    # --check writes nothing into the callers' homes
    Case("setup", ["--check"], ok_codes=frozenset({0, 1}), expect="✓ account"),
    Case("doctor", ok_codes=frozenset({0, 1}), expect="✓ service"),
    Case("admin base-updates", admin=True, expect="not checked yet"),
    # no directory is configured here: a clear usage refusal, for admins too
    Case("admin ldap sync", ["--dry-run"], admin=True, ok_codes=frozenset({2}), expect="ldap"),
    Case("admin ldap show", ["ds01ta"], admin=True, ok_codes=frozenset({2}), expect="ldap"),
    # cgroups check reports this test host's cgroups (exit 1 when something is off)
    Case("admin cgroups check", ["--user", "ds01ta"], admin=True, ok_codes=frozenset({0, 1})),
    # ds01-prometheus: root only (it writes under /etc): an admin who is not root is refused
    # (exit 2) like a user; root's dry run writes nothing
    Case("admin monitoring install", ["--dry-run"], admin=True, ok_codes=frozenset({0, 2})),
    # ds01-projects, through the real gateway this test runs: an image built, listed, changed,
    # rebuilt; a project made, launched on a GPU, listed and retired with its packages saved
    Case(
        "image create",
        ["{box}", "--base", "busybox", "--pip", "numpy", "--yes"],
        expect="ds01/{me}/{box}:latest",
    ),
    Case("image list", ["--json"], expect='"ds01/{me}/{box}:latest"'),
    Case("image update", ["{box}", "--add-pip", "scipy", "--yes"], expect="+ pip scipy"),
    Case("image rebuild", ["{box}"], expect="ds01/{me}/{box}:latest"),
    Case(
        "project init",
        ["{box}-prj", "--dir", "/tmp/{box}-prj", "--base", "busybox", "--yes"],
        expect="project {box}-prj in /tmp/{box}-prj",
    ),
    Case("project launch", ["/tmp/{box}-prj"], expect="{me}-{box}-prj"),
    Case("project list", ["--json"], expect="{box}-prj"),
    Case(
        "container retire",
        ["{me}-{box}-prj", "--save-packages", "--yes"],
        expect="{me}-{box}-prj",
    ),
    Case("image remove", ["{box}", "--yes"], expect="{box}"),
    # ds01-slurm: no Slurm is configured here (tests/plugins/slurm run a real one): each
    # command says so in one line, and nothing reaches Slurm without passing ds01's checks
    Case(
        "job submit",
        ["--image", "ds01-test:busybox", "--", "true"],
        ok_codes=frozenset({1}),
        expect="Slurm is not configured on this server",
    ),
    Case("job list", ok_codes=frozenset({1}), expect="Slurm is not configured"),
    Case("job status", ["1"], ok_codes=frozenset({1}), expect="Slurm is not configured"),
    Case("job logs", ["1"], ok_codes=frozenset({1}), expect="Slurm is not configured"),
    Case("job cancel", ["1"], ok_codes=frozenset({1}), expect="Slurm is not configured"),
    Case(
        "job interactive", ["--image", "ds01-test:busybox"], ok_codes=frozenset({1}), expect="srun"
    ),
    Case(
        "job run",
        ["--image", "ds01-test:busybox", "--", "true"],
        ok_codes=frozenset({2}),
        expect="runs inside a Slurm job",
    ),
    Case("admin slurm config", admin=True, ok_codes=frozenset({1}), expect="plugins.slurm.gpus"),
    # ds01-web: every user makes, lists and revokes their own API tokens
    Case("token create", ["--name", "{box}", "--expires", "1d"], expect="ds01_"),
    Case("token list", ["--json"], expect='"{box}"'),
    Case("token revoke", _token_id, expect="revoked token"),
    # ds01-mlflow: no MLflow is set up here (tests/plugins/mlflow run a real one): one line each
    Case("mlflow status", ok_codes=frozenset({1}), expect="MLflow is not set up"),
    Case(
        "mlflow share", ["{box}", "ds01tb"], ok_codes=frozenset({1}), expect="MLflow is not set up"
    ),
    Case("mlflow unshare", ["{box}", "ds01tb"], ok_codes=frozenset({1}), expect="not set up"),
    Case(
        "admin mlflow sync", ["--dry-run"], admin=True, ok_codes=frozenset({1}), expect="not set up"
    ),
)


def command_paths() -> list[str]:
    """Every leaf command of the ``ds01`` tree, with the installed plugins' commands (read in a
    fresh interpreter: adding plugin commands changes the process's click tree for good)."""
    done = subprocess.run(
        [sys.executable, "-c", WALK], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.splitlines()


WALK = """
import click
from ds01_core.transports.cli import _add_plugin_commands, cli
_add_plugin_commands([])
def walk(cmd, path):
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, [*path, name])
    else:
        yield " ".join(path)
print("\\n".join(walk(cli, [])))
"""


def test_every_command_has_a_case() -> None:
    paths = set(command_paths())
    assert {"quota", "container create", "admin doctor", "notify prefs"} <= paths, paths
    missing = sorted(paths - {c.command for c in CASES})
    assert not missing, f"commands without a case in {__file__}: {missing}"


@attrs.define
class Session:
    """One caller's run through the cases."""

    role: str
    user: Any  # UnixUser, or None for root
    config: Path
    sock: str
    user_cli: Path

    @property
    def readable_config(self) -> Path:
        """The configuration, copied where every user can read it (``config check`` runs in
        the caller's own process, on a file it can read)."""
        return self.user_cli / "ds01.yaml"

    @property
    def me(self) -> str:
        return self.user.name if self.user else "root"

    @property
    def box(self) -> str:
        return f"cmd-{self.role}-{os.getpid()}"

    def fill(self, text: str) -> str:
        return text.format(me=self.me, box=self.box)

    def root(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ds01 ARGS`` as root, in-process (no socket), with the test's configuration."""
        env = {k: v for k, v in os.environ.items() if k != "DS01_API_SOCKET"}
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from ds01_core.transports.cli import main; main()",
                "--config",
                str(self.config),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "COLUMNS": "200"},
        )

    def run(self, case: Case) -> subprocess.CompletedProcess[str]:
        raw = case.args(self) if callable(case.args) else case.args
        args = [*case.command.split(), *(self.fill(a) for a in raw)]
        if self.user is None:
            return self.root(*args)
        return run_as(self.user, self.user_cli, args, env={"DS01_API_SOCKET": self.sock})


#: the projects plugin's catalogue: the test image, "installing" packages with echo
CATALOGUE = {
    "busybox": {
        "image": "ds01-test",
        "tag": "busybox",
        "pip_install": "echo {packages} >> /installed-pip",
    }
}


@pytest.fixture(scope="module")
def service(tmp_path_factory, docker_engine, test_image, unix_users):
    base = tmp_path_factory.mktemp("every-command")
    base.chmod(0o755)
    # an existing group stands in for bare_metal.group (grant and revoke change membership)
    extra = {"bare_metal": {"group": "users"}, "plugins": {"projects": {"catalogue": CATALOGUE}}}
    config = write_config(base, extra)
    with running_gateway(config) as gateway:
        data = yaml.safe_load(config.read_text())
        data["gateway"] = {"socket": gateway}  # where ds01 image and project find Docker
        config.write_text(yaml.safe_dump(data))
        with running_api(config) as sock:
            yield config, sock
    for summary in docker_engine.list_containers(all=True):
        names = [n.lstrip("/") for n in summary.get("Names") or ()]
        if any(
            n.startswith(("cmd-", "root-cmd-", "ds01t")) and str(os.getpid()) in n for n in names
        ):
            docker_engine.remove(summary["Id"], force=True)
    for image in docker_engine.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith("ds01/") and "/cmd-" in tag and str(os.getpid()) in tag:
                docker_engine.api.remove_image(tag, force=True)
    for folder in Path("/tmp").glob(f"cmd-*-{os.getpid()}-prj"):  # `project init --dir`
        shutil.rmtree(folder, ignore_errors=True)
    for home in ("/root", *(u.home for u in unix_users.values())):
        for folder in Path(home, ".ds01", "images").glob(f"cmd-*-{os.getpid()}"):
            shutil.rmtree(folder, ignore_errors=True)


ROLES = ("user", "admin", "root")


class TurnLock:
    """Many callers' ordinary commands at once (``shared``), or one caller's run of admin
    commands alone (``exclusive``): those change what every caller sees (an override, an
    exemption and a bare-metal grant for ds01ta, the GPUs released), so no other command runs
    between the first and the last of them, just as when the callers took turns. A waiting
    ``exclusive`` goes before new ``shared`` ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def run_cases(session: Session, lock: TurnLock) -> list[str]:
    """Every case as one caller, in order; what went wrong, one entry per case."""
    role = session.role
    problems = []
    for admin, group in itertools.groupby(CASES, key=lambda c: c.admin):
        # an admin's (or root's) run of admin commands happens alone; a plain user's are
        # refused and change nothing
        alone = admin and role != "user"
        with lock.exclusive() if alone else nullcontext():
            for case in group:
                with nullcontext() if alone else lock.shared():
                    result = session.run(case)
                output = result.stdout + result.stderr
                where = f"[{role}] ds01 {case.command}: exit {result.returncode}\n{output}"
                if "Traceback" in output or "this is a bug in ds01" in output:
                    problems.append(f"traceback/bug — {where}")
                    continue
                if case.admin and role == "user":
                    if result.returncode != 2 or not result.stderr.startswith("Error: "):
                        problems.append(f"expected a refusal (exit 2, Error: …) — {where}")
                    elif "admin" not in result.stderr:
                        problems.append(f"the refusal does not say it is for admins — {where}")
                    continue
                if result.returncode not in case.ok_codes:
                    problems.append(f"failed — {where}")
                elif case.expect and session.fill(case.expect) not in output:
                    problems.append(f"expected {session.fill(case.expect)!r} — {where}")
    return problems


@pytest.fixture(scope="module")
def outcomes(service, unix_users, admin_member, user_cli) -> Iterator[dict[str, Future]]:
    """The three callers' runs, at the same time (each ``ds01`` start-up is mostly CPU: one
    caller at a time left a core idle); each test waits for its own caller's."""
    config, sock = service
    readable = user_cli / "ds01.yaml"
    readable.write_text(config.read_text())
    readable.chmod(0o644)
    users = {"user": unix_users["ds01ta"], "admin": admin_member, "root": None}
    lock = TurnLock()
    with ThreadPoolExecutor(len(ROLES), thread_name_prefix="every-command") as pool:
        yield {
            role: pool.submit(run_cases, Session(role, users[role], config, sock, user_cli), lock)
            for role in ROLES
        }


@pytest.mark.parametrize("role", ROLES)
def test_every_command_as(role, outcomes):
    problems = outcomes[role].result(timeout=1800)
    assert not problems, "\n\n".join(problems)
