"""The core's layout holds: no import circles, layers, small modules, one-job docstrings.

Read from the source with ``ast`` (nothing is imported, except by the last test, which imports
each module on its own in a fresh child process). The rules:

- no import circle among ``ds01_core`` modules, counting module-level and function-local imports
  (a local import hides a circle from Python, not from the design); ``if TYPE_CHECKING:`` blocks
  do not count;
- layers, bottom to top: domain → framework → cycle → services → transports. A module imports
  only from its own layer or below. The built-in plugins (``builtin/``) sit beside the services:
  they may import domain, framework, cycle and services, and nothing outside ``builtin/`` imports
  them (each can be disabled, so nothing may depend on one; the plugin manager names them by
  module string, which is no import). Modules directly under ``ds01_core`` (the package itself,
  ``ds01_core.api``) are the facade over every layer: no layer imports them;
- no module over 400 lines;
- every module has a docstring whose first line, on its own, says the module's one job;
- a function-local import of a ``ds01_core`` module carries its reason in a comment on the same
  line or the line above (it is there to avoid a real cost, and says which);
- every module imports on its own, whatever was imported before.

The known offenders below are the ones left while the layout is being put in order (issue 13).
Each list's expected end state is empty: a new offender fails, and so does an entry that is no
longer an offender (delete it from the list).
"""

from __future__ import annotations

import ast
import functools
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

# -- known offenders (all empty: a new one fails, nothing is waved through) ------------------------------------------------------

#: Import circles, each as the set of modules in it (a strongly connected component).
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()

#: (importer, imported) pairs that import from a higher layer (or into ``builtin/``).
KNOWN_LAYER_BREACHES: frozenset[tuple[str, str]] = frozenset()

#: Modules over MAX_LINES lines.
KNOWN_LONG_MODULES: frozenset[str] = frozenset()

#: Modules whose docstring's first line does not say their job on its own.
KNOWN_UNCLEAR_DOCSTRINGS: frozenset[str] = frozenset()

#: (importer, imported) pairs of function-local imports without a reason comment.
KNOWN_UNEXPLAINED_LOCAL_IMPORTS: frozenset[tuple[str, str]] = frozenset()

#: Modules that fail to import in a fresh interpreter.
KNOWN_NOT_IMPORTABLE_ALONE: frozenset[str] = frozenset()

# -- the rules -----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ds01_core"
MAX_LINES = 400

#: Layer of each first-level folder, bottom first; ``builtin`` sits beside ``services``.
LAYER_RANK = {"domain": 0, "framework": 1, "cycle": 2, "services": 3, "builtin": 3, "transports": 4}
FACADE = "(facade)"
#: ``ds01_core`` itself: its ``__init__`` (the version) runs before any of its modules, so every
#: module may import from it, and it imports none of them.
ROOT_PACKAGE = "(package)"


@attrs.frozen
class Import:
    """One import of a ``ds01_core`` module, resolved to the module it loads."""

    importer: str
    target: str
    line: int
    local: bool  # inside a function (runs when called, not when the module is imported)
    reason: str  # the comment on its line or the line above ("" when none)


@attrs.frozen
class Module:
    name: str
    path: Path
    lines: int
    docstring: str | None
    imports: tuple[Import, ...]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    nodes: list[ast.stmt], local: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it is inside a function; ``if TYPE_CHECKING:``
    bodies skipped (their ``else`` kept)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, local
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse, local)
        else:
            inner = local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    blocks = [c for c in children if isinstance(c, ast.stmt)]
                    # except handlers and match cases hold statements one level down
                    for child in children:
                        if isinstance(child, ast.excepthandler | ast.match_case):
                            blocks.extend(child.body)
                    yield from _import_nodes(blocks, inner)


def _comments(source: str) -> dict[int, str]:
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def _reason(comments: dict[int, str], lines: list[str], line: int) -> str:
    """The comment on the import's line, else a comment line right above it."""
    if line in comments:
        return comments[line]
    above = line - 1
    if above in comments and lines[above - 1].lstrip().startswith("#"):
        return comments[above]
    return ""


def _targets(node: ast.Import | ast.ImportFrom, importer: str, modules: set[str]) -> list[str]:
    """The ``ds01_core`` modules an import statement loads (for ``from p import x``: ``p.x``
    when that is a module, else ``p``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [_longest_module(name, modules) for name in names if _ours(name)]
    base = node.module or ""
    if node.level:
        package = importer.split(".")
        if not _is_package(importer):
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    if not _ours(base):
        return []
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in modules else _longest_module(base, modules))
    return found


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _longest_module(name: str, modules: set[str]) -> str:
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_package(name: str) -> bool:
    return (ROOT / name.replace(".", "/") / "__init__.py").is_file()


@functools.cache
def core() -> dict[str, Module]:
    paths = sorted((ROOT / PACKAGE).rglob("*.py"))
    names = {module_name(p) for p in paths}
    found = {}
    for path in paths:
        name = module_name(path)
        source = path.read_text()
        tree = ast.parse(source, str(path))
        comments, lines = _comments(source), source.splitlines()
        imports = tuple(
            Import(name, target, node.lineno, local, _reason(comments, lines, node.lineno))
            for node, local in _import_nodes(tree.body)
            for target in dict.fromkeys(_targets(node, name, names))
            if target != name
        )
        found[name] = Module(name, path, len(lines), ast.get_docstring(tree), imports)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if module == PACKAGE:
        return ROOT_PACKAGE
    return parts[1] if len(parts) > 1 and parts[1] in LAYER_RANK else FACADE


def may_import(importer: str, target: str) -> bool:
    mine, theirs = layer(importer), layer(target)
    if theirs == ROOT_PACKAGE:  # loaded before any module of the core anyway
        return True
    if mine in (FACADE, ROOT_PACKAGE):
        return mine == FACADE
    if theirs == FACADE:
        return False
    if theirs == "builtin":
        return mine == "builtin"
    return LAYER_RANK[theirs] <= LAYER_RANK[mine]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a
    circle through its modules: ``[a, b, c, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_circle(c, graph) for c in components]


def _a_circle(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest circle from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no circle in {component}")  # a component always has one


def first_line_says_a_job(docstring: str | None) -> bool:
    """A summary line that stands alone: some words, ending as a sentence or a heading does
    (a line that runs on into the next one says half a job)."""
    if not docstring:
        return False
    first = docstring.strip().splitlines()[0].strip()
    return len(first.split()) >= 4 and first.endswith((".", ":", ")", "?", "!"))


def explains(reason: str) -> bool:
    """A comment that gives a reason: some words besides a ``noqa``/``type:`` marker."""
    words = [w for w in reason.split() if not w.startswith(("noqa", "type:", "ignore["))]
    return len(words) >= 3


def _check_known(found: set, known: frozenset, what: str, describe: dict | None = None) -> None:
    describe = describe or {}
    new = sorted(found - known, key=str)
    fixed = sorted(known - found, key=str)
    problems = [f"new {what}: {describe.get(item, item)}" for item in new]
    problems += [f"no longer {what} (delete it from the known list): {item}" for item in fixed]
    assert not problems, "\n".join(problems)


# -- tests ---------------------------------------------------------------------------------------


def test_the_core_is_found() -> None:
    """The checks below see the whole core (a broken walk would make them pass vacuously)."""
    modules = core()
    assert len(modules) > 50
    assert {"ds01_core", "ds01_core.domain.model", "ds01_core.transports.cli"} <= set(modules)
    imports = [i for m in modules.values() for i in m.imports]
    assert any(i.local for i in imports) and any(not i.local for i in imports)


def test_no_import_circles() -> None:
    graph = {name: {i.target for i in m.imports} for name, m in core().items()}
    found = {frozenset(c): " → ".join(c) for c in circles(graph)}
    _check_known(set(found), KNOWN_CIRCLES, "import circle", found)


def test_each_module_imports_only_its_layer_or_below() -> None:
    found = {}
    for module in core().values():
        for imp in module.imports:
            if not may_import(imp.importer, imp.target):
                found[imp.importer, imp.target] = (
                    f"{imp.importer} ({layer(imp.importer)}) imports {imp.target} "
                    f"({layer(imp.target)}) at line {imp.line}"
                )
    _check_known(set(found), KNOWN_LAYER_BREACHES, "layer breach", found)


def test_no_module_is_over_400_lines() -> None:
    found = {m.name: f"{m.name}: {m.lines} lines" for m in core().values() if m.lines > MAX_LINES}
    _check_known(set(found), KNOWN_LONG_MODULES, f"module over {MAX_LINES} lines", found)


def test_each_module_says_its_one_job_in_its_first_docstring_line() -> None:
    found = {
        m.name: f"{m.name}: {(m.docstring or '(no docstring)').splitlines()[0]!r}"
        for m in core().values()
        if not first_line_says_a_job(m.docstring)
    }
    _check_known(set(found), KNOWN_UNCLEAR_DOCSTRINGS, "unclear docstring", found)


def test_function_local_imports_of_the_core_say_why() -> None:
    local = [i for m in core().values() for i in m.imports if i.local]
    found = {
        (i.importer, i.target): f"{i.importer}:{i.line} imports {i.target} with no reason"
        for i in local
        if not explains(i.reason)
    }
    _check_known(
        set(found),
        KNOWN_UNEXPLAINED_LOCAL_IMPORTS,
        f"unexplained function-local import ({len(local)} in the core)",
        found,
    )


# Imported by the parent before it forks a child per module: the core's third-party
# dependencies (what each child would import anyway), never a ds01_core module.
_IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
for dependency in ("attrs", "cattrs", "click", "docker", "pluggy", "pynvml", "yaml"):
    try:
        importlib.import_module(dependency)
    except ImportError:
        pass
assert not any(m == "ds01_core" or m.startswith("ds01_core.") for m in sys.modules)
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status:
        last = output.strip().splitlines()[-1] if output.strip() else f"status {status}"
        print(f"{name}\\t{last}")
"""


def test_every_module_imports_on_its_own() -> None:
    """Import order independence: each module in a fresh process (forked from one with only
    third-party libraries loaded), so no module works only because another was imported first."""
    names = sorted(core())
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_ALONE, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    found = dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    described = {name: f"{name}: {error}" for name, error in found.items()}
    _check_known(
        set(found), KNOWN_NOT_IMPORTABLE_ALONE, "module that fails to import alone", described
    )


# -- the checks themselves catch what they claim --------------------------------------------------


def test_circles_are_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert circles(graph) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize(
    ("importer", "target", "allowed"),
    [
        ("ds01_core.services.quota", "ds01_core.domain.model", True),
        ("ds01_core.domain.model", "ds01_core.services.quota", False),
        ("ds01_core.framework.manager", "ds01_core.cycle.pipeline", False),
        ("ds01_core.builtin.idle_policy", "ds01_core.services.quota", True),
        ("ds01_core.services.quota", "ds01_core.builtin.idle_policy", False),
        ("ds01_core.transports.cli", "ds01_core.builtin.idle_policy", False),
        ("ds01_core.api", "ds01_core.transports.cli", True),
        ("ds01_core.domain.model", "ds01_core.api", False),
        ("ds01_core.domain.model", "ds01_core", True),
        ("ds01_core", "ds01_core.domain.model", False),
    ],
)
def test_the_layer_rule(importer: str, target: str, allowed: bool) -> None:
    assert may_import(importer, target) is allowed


def test_imports_are_resolved_and_type_checking_is_skipped(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ds01_core.domain import model\n"
        "from . import units\n"
        "if TYPE_CHECKING:\n"
        "    from ds01_core.services import quota\n"
        "def f():\n"
        "    # loaded late: the GPU library is slow to import\n"
        "    from ds01_core.domain.gpu import nvml\n"
        "    try:\n"
        "        import ds01_core.cycle.pipeline\n"
        "    except ImportError:\n"
        "        from ds01_core.framework.runtime import Runtime\n"
    )
    tree = ast.parse(source)
    names = set(core())
    got = [
        (_targets(node, "ds01_core.domain.limits", names), local)
        for node, local in _import_nodes(tree.body)
    ]
    assert got == [
        ([], False),
        (["ds01_core.domain.model"], False),
        (["ds01_core.domain.units"], False),
        (["ds01_core.domain.gpu.nvml"], True),
        (["ds01_core.cycle.pipeline"], True),
        (["ds01_core.framework.runtime"], True),
    ]
    lines, comments = source.splitlines(), _comments(source)
    assert explains(_reason(comments, lines, 8))
    assert not explains(_reason(comments, lines, 10))


def test_docstring_and_reason_rules() -> None:
    assert first_line_says_a_job("The audit log: append-only JSON Lines.\n\nMore.")
    assert not first_line_says_a_job("The lifecycle step of a cycle: idle containers stopped on\n")
    assert not first_line_says_a_job(None)
    assert explains("noqa: PLC0415 - the GPU library is slow to import")
    assert not explains("noqa: PLC0415")
