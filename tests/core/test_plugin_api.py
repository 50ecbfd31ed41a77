"""The public API for plugins: ``ds01_core.api`` is all a shipped plugin imports from the core,
every name it offers exists and is documented, and plugins are held to the core versions they
declare (``ds01>=…,<…``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import inspect
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ds01_core
from ds01_core import api
from ds01_core.domain.config import build_config
from ds01_core.framework.core_version import admits, core_specifier, unmet_core_requirement
from ds01_core.framework.manager import EntryPointSource, PluginStartupError, make_plugin_host
from ds01_core.framework.runtime import Runtime
from ds01_core.services.caller import Caller
from ds01_core.services.catalogue import call
from ds01_core.services.errors import Forbidden
from ds01_core.services.operations import ServiceContext
from ds01_core.transports.cli.state import CliState

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
DOCS = ROOT / "docs" / "plugins.md"
SHIPPED = sorted(p.parent for p in PLUGINS.glob("*/pyproject.toml"))
#: what a plugin may name from the core
ALLOWED = "ds01_core.api"
IMPORT_FUNCTIONS = {"import_module", "__import__", "find_spec", "import_string"}


def plugin_sources(plugin: Path) -> list[Path]:
    """The plugin's own Python files (a ``build/`` left by pip is not the plugin)."""
    return sorted(
        p
        for p in plugin.rglob("*.py")
        if not {"build", "dist"} & set(p.relative_to(plugin).parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
    )


def core_imports(source: str) -> list[str]:
    """Every core module ``source`` imports that is not ``ds01_core.api``: ``import`` and
    ``from … import`` anywhere (in functions, under TYPE_CHECKING too), and module names given
    as text to ``importlib.import_module``, ``__import__`` and the like."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ds01_core":  # from ds01_core import api / domain / …
                names = [f"ds01_core.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in IMPORT_FUNCTIONS:
                continue
            names = [
                arg.value
                for arg in [*node.args, *(k.value for k in node.keywords)]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
        else:
            continue
        found += [
            name
            for name in names
            if (name == "ds01_core" or name.startswith("ds01_core.")) and name != ALLOWED
        ]
    return found


def test_every_shipped_plugin_is_checked():
    assert {p.name for p in SHIPPED} >= {"mig", "ldap", "cgroups", "notify", "diskquota"}
    for plugin in SHIPPED:
        assert plugin_sources(plugin), f"{plugin.name}: no Python files found"


@pytest.mark.parametrize("plugin", SHIPPED, ids=lambda p: p.name)
def test_shipped_plugin_imports_only_the_api_from_the_core(plugin):
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in plugin_sources(plugin)
        for name in core_imports(path.read_text())
    }
    assert not wrong, "import these through ds01_core.api instead:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize(
    "source",
    [
        "from ds01_core.domain.model import Workload",
        "import ds01_core.transports.cli",
        "from ds01_core import domain",
        "def f():\n    from ds01_core.cycle.pipeline import detect",
        "if TYPE_CHECKING:\n    from ds01_core.framework.runtime import Runtime",
        "import importlib\nimportlib.import_module('ds01_core.services.user_containers')",
        "from importlib import import_module\nimport_module(name='ds01_core.domain.users')",
        "__import__('ds01_core.domain.users')",
    ],
)
def test_the_import_check_finds_every_way_of_importing(source):
    assert core_imports(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from ds01_core.api import Workload, hookimpl",
        "from ds01_core import api",
        "import ds01_core.api",
        "def f():\n    from ds01_core.api import tell_user",
        "from ds01_notify.config import CHANNELS",
        "importlib.import_module('ds01_core.api')",
    ],
)
def test_the_import_check_lets_the_api_through(source):
    assert core_imports(source) == []


# -- ds01_core.api ----------------------------------------------------------------------------


def test_api_names_are_unique_and_each_is_there():
    assert len(api.__all__) == len(set(api.__all__))
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing
    with pytest.raises(AttributeError):
        api.no_such_name  # noqa: B018


def test_api_lazy_sources_and_type_checking_imports_agree():
    """Each re-exported name is imported (for type checkers) from the module it is loaded
    from at run time, under its own name; the rest of ``__all__`` is defined in api.py."""
    tree = ast.parse(Path(api.__file__).read_text())
    typed = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names:
                    typed[alias.asname or alias.name] = (stmt.module, alias.name)
    assert typed == {name: (module, name) for name, module in api._SOURCES.items()}
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert set(api.__all__) == set(api._SOURCES) | (defined & set(api.__all__))
    for name, module in api._SOURCES.items():
        assert getattr(api, name) is getattr(sys.modules[module], name)


@pytest.mark.parametrize("name", sorted(api.__all__))
def test_api_name_is_documented(name):
    assert f"``{name}``" in (api.__doc__ or ""), f"{name}: not described in ds01_core.api"
    assert f"`{name}`" in DOCS.read_text(), f"{name}: not described in docs/plugins.md"
    value = getattr(api, name)
    if (inspect.isclass(value) or inspect.isfunction(value)) and getattr(
        value, "__module__", ""
    ).startswith("ds01_core"):
        assert inspect.getdoc(value), f"{name}: has no docstring"


def test_api_promises_stability_in_its_docstring():
    doc = api.__doc__ or ""
    assert "major version" in doc and "internal" in doc


def test_importing_the_api_loads_nothing_heavy():
    """Names load on first use: a plugin that needs the model never pays for the CLI, the
    service layer or Docker's SDK (each plugin is imported by every ds01 process)."""
    code = (
        "import sys\n"
        "import ds01_core.api\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "from ds01_core.api import Workload, hookimpl\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    heavy = ("ds01_core.", "click", "docker", "pluggy", "cattrs", "yaml", "sqlite3")
    after_import, after_model = ([m for m in line.split() if m.startswith(heavy)] for line in out)
    assert after_import == ["ds01_core.api"]
    assert "ds01_core.domain.model" in after_model
    assert not [m for m in after_model if m.startswith(("click", "docker", "ds01_core.transports"))]


# -- the core version a plugin declares ---------------------------------------------------------


def core_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def next_major(version: str) -> str:
    """The first version this core's API does not promise to plugins (0.x: the next minor)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    return f"0.{minor + 1}.0" if major == 0 else f"{major + 1}.0.0"


def test_the_package_and_the_distribution_agree_on_the_version():
    assert ds01_core.__version__ == core_version()


@pytest.mark.parametrize("plugin", SHIPPED, ids=lambda p: p.name)
def test_shipped_plugin_declares_a_bounded_core_version(plugin):
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    specifier = core_specifier(project.get("dependencies", []))
    assert specifier, f"{plugin.name}: declare dependencies = ['ds01>=X,<Y']"
    assert admits(specifier, core_version()), f"{plugin.name}: ds01{specifier} excludes this core"
    assert not admits(specifier, next_major(core_version())), (
        f"{plugin.name}: ds01{specifier} has no upper bound below {next_major(core_version())}"
    )


@pytest.mark.parametrize(
    ("specifier", "version", "expected"),
    [
        (">=0.1,<0.2", "0.1.0", True),
        (">=0.1,<0.2", "0.1.7", True),
        (">=0.1,<0.2", "0.2.0", False),
        (">=0.1,<0.2", "0.0.9", False),
        (">=0.1,<0.2", "0.2.0rc1", False),  # <0.2 is "before any 0.2"
        (">=0.1,<0.2", "0.1.0.dev1", False),
        (">=0.2", "0.10.0", True),  # numbers, not text
        ("<0.2,>=0.1", "0.1", True),
        ("==0.1.*", "0.1.4", True),
        ("==0.1.*", "0.2.0", False),
        ("!=0.1.3", "0.1.3", False),
        ("~=0.1.2", "0.1.9", True),
        ("~=0.1.2", "0.2.0", False),
        ("~=0.1.2", "0.1.1", False),
        (">1.0", "1.0", False),
        (">1.0", "1.0.post1", False),
        ("<=1.0", "1.0.0", True),
        ("==1.0", "1.0.0", True),
        ("", "3.0", True),
    ],
)
def test_version_specifiers(specifier, version, expected):
    assert admits(specifier, version) is expected


def test_the_version_reader_agrees_with_packaging():
    """The core reads ``ds01>=…`` itself (packaging is not one of its dependencies): every
    operator on releases, pre-, post- and dev-releases and local labels, as packaging reads
    them."""
    specifiers = pytest.importorskip("packaging.specifiers")
    releases = ["0", "0.1", "0.1.0", "0.1.2", "0.2", "1", "0.10"]
    suffixes = ["", "rc1", "a2", ".dev1", ".post1", "b1.dev2", "rc1.post1", "+local.1"]
    versions = [r + s for r in releases for s in suffixes]
    wrong = []
    for op in ("<", "<=", ">", ">=", "==", "!=", "~=", "==*", "!=*"):
        for bound in versions if "*" not in op else releases:
            spec = f"{op[:2]}{bound}.*" if "*" in op else f"{op}{bound}"
            try:
                theirs = specifiers.SpecifierSet(spec)
            except specifiers.InvalidSpecifier:
                continue
            wrong += [
                (spec, v)
                for v in versions
                if admits(spec, v) != theirs.contains(v, prereleases=True)
            ]
    assert not wrong, wrong[:20]


def test_the_core_requirement_is_found_among_the_others():
    assert core_specifier(["ldap3>=2.9", "ds01>=0.1,<0.2"]) == ">=0.1,<0.2"
    assert core_specifier(["DS01 (>=0.1,<0.2)"]) == ">=0.1,<0.2"
    assert core_specifier(['ds01>=0.1; python_version >= "3.11"']) == ">=0.1"
    assert core_specifier(["ds01"]) == ""
    assert core_specifier(["ds01-mig>=1", "ldap3"]) is None
    assert core_specifier(['ds01>=9; extra == "web"']) is None  # optional: not about the core


def test_an_unreadable_requirement_is_reported():
    class Dist:
        requires = ["ds01>=zero"]

    problem = unmet_core_requirement(Dist(), "0.1.0")
    assert problem and "cannot read" in problem and "zero" in problem


def install_plugin(site: Path, name: str, requires: list[str]) -> EntryPointSource:
    """A plugin distribution installed in ``site`` as pip leaves one: its module, and a
    ``.dist-info`` with METADATA (the requirements) and entry_points.txt. Importing its module
    raises, so a test sees whether the manager imported it."""
    module = f"ds01_{name}_plugin"
    (site / f"{module}.py").write_text("raise RuntimeError('imported')\n")
    info = site / f"ds01_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: ds01-{name}",
        "Version: 1.0",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    (info / "METADATA").write_text("\n".join(metadata) + "\n")
    (info / "entry_points.txt").write_text(f"[ds01]\n{name} = {module}\n")
    return EntryPointSource(
        lambda: [
            ep
            for dist in md.distributions(path=[str(site)])
            for ep in dist.entry_points
            if ep.group == "ds01"
        ]
    )


def test_a_plugin_made_for_another_core_is_reported_and_not_imported(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = install_plugin(tmp_path, "future", ["ds01>=99,<100", "ldap3"])
    host = make_plugin_host(builtins=(), entry_points=source)
    record = host.record("future")
    assert record is not None and record.status == "failed"
    assert record.distribution == "ds01-future" and record.version == "1.0"
    assert record.error is not None
    assert "ds01>=99,<100" in record.error
    assert f"ds01 {ds01_core.__version__}" in record.error
    assert "ds01_future_plugin" not in sys.modules
    wanted = rf"required plugin 'future'.*ds01 {re.escape(ds01_core.__version__)}"
    with pytest.raises(PluginStartupError, match=wanted):
        make_plugin_host(builtins=(), entry_points=source, required=["future"])


def test_a_plugin_made_for_this_core_is_imported(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    bound = f"ds01>={core_version()},<{next_major(core_version())}"
    source = install_plugin(tmp_path, "current", [bound])
    record = make_plugin_host(builtins=(), entry_points=source).record("current")
    assert record is not None and record.status == "failed"
    assert record.error == "RuntimeError: imported"  # it got as far as being imported


def test_a_disabled_plugin_is_not_judged(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = install_plugin(tmp_path, "old", ["ds01<0.1"])
    record = make_plugin_host(builtins=(), entry_points=source, disabled=["old"]).record("old")
    assert record is not None and record.status == "disabled" and record.error is None


def docs_examples() -> list[str]:
    text = DOCS.read_text()
    return [block.split("```", 1)[0] for block in text.split("```python")[1:]]


def test_the_example_in_the_docs_imports_only_the_api():
    blocks = docs_examples()
    assert blocks, "docs/plugins.md has no Python example"
    for block in blocks:
        assert core_imports(textwrap.dedent(block)) == []
    assert any("from ds01_core.api import" in b for b in blocks)


def test_the_example_in_the_docs_works(tmp_path, monkeypatch):
    """The example plugin, as written in docs/plugins.md: its config section, a hook, its
    operation (called by a user) and its command (run as root, in-process)."""
    package = tmp_path / "ds01_example"
    package.mkdir()
    init, cli = docs_examples()
    (package / "__init__.py").write_text(init)
    (package / "cli.py").write_text(cli)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ds01_example", raising=False)
    monkeypatch.delitem(sys.modules, "ds01_example.cli", raising=False)
    example = importlib.import_module("ds01_example")

    host = make_plugin_host(extra=[("example", example)], builtins=(), load_entry_points=False)
    data = {
        "paths": {k: str(tmp_path / k) for k in ("state_dir", "log_dir", "runtime_dir")},
        "gpu": {"backend": "simulated"},
        "plugins": {"example": {"greeting": "hi", "grace": "2m"}},
    }
    runtime = Runtime(build_config(data, sections=host.config_sections()), host)
    assert runtime.plugin_config("example").grace == 120
    [action] = host.hooks.enforce_limits(runtime, "alice", None, [])
    assert (action.plugin, action.user, action.detail) == ("example", "alice", "hi")

    alice = ServiceContext(runtime, Caller("alice", 1001, admin=False))
    assert call(alice, "example.count") == {"user": "alice", "workloads": 0}
    with pytest.raises(Forbidden):
        call(alice, "example.count", user="bob")

    group = click.Group()
    assert host.hooks.add_cli_commands(group) == []
    state = CliState(None, True)
    state.__dict__["runtime"] = runtime  # root, in-process, with this runtime
    out = CliRunner().invoke(group, ["example", "--json", "--user", "bob"], obj=state)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"user": "bob", "workloads": 0}
