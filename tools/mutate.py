"""A small mutation check: mutate the policy, allocation, idle and event-log code, run the tests
that cover it, and report every mutant that no test kills.

Usage (from the repository root, in an environment with the test dependencies; ``tox -e
mutate`` makes one)::

    python -m tools.mutate                   # the named mutations, then every target
    python -m tools.mutate --named-only      # only the issue's named mutations (~1 minute)
    python -m tools.mutate --target policy   # one target (repeatable)

Each mutant is written into a private copy of the tree (the working tree is never touched) and
the target's tests run there with ``pytest -x``; the first failing test is reported as the
killer. Exit status: 0 when every named mutation is killed, 1 when one survives, 2 when the
check itself cannot run (a named snippet or function not found, the tests red unmutated).
Surviving ordinary mutants are reported (and written with ``--json``) but do not fail the run.
"""

from __future__ import annotations

import argparse
import ast
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue

from tools.mutation_targets import NAMED, TARGETS, Named, Target

ROOT = Path(__file__).resolve().parent.parent
SKIP_COPY = shutil.ignore_patterns(".git", ".tox", "__pycache__", "build", "*.egg-info", ".mutate")
OPERATORS = {">=": ">", ">": ">=", "<=": "<", "<": "<=", "==": "!=", "!=": "==", "+": "-", "-": "+"}
WORDS = {"and": "or", "or": "and", "True": "False", "False": "True", "not": ""}


class CheckError(Exception):
    """The check cannot run as asked (exit status 2)."""


@dataclass
class Mutant:
    target: str
    path: str  # relative to the tree
    line: int
    description: str
    source: str  # the whole mutated module
    tests: tuple[str, ...]
    named: bool = False
    outcome: str = ""  # "killed" or "survived"
    killer: str = ""


# -- finding code by name ----------------------------------------------------------------------


def functions_named(
    tree: Path, name: str
) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every def called ``name`` (functions and methods) in ds01_core, as (path, node)."""
    found = []
    for path in sorted((tree / "ds01_core").rglob("*.py")):
        module = ast.parse(path.read_text(), str(path))
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                found.append((str(path.relative_to(tree)), node))
    return found


def named_mutant(tree: Path, named: Named) -> Mutant:
    """The named mutation applied where its function and snippet are now; loud when not found."""
    hits = []
    for path, node in functions_named(tree, named.function):
        text = (tree / path).read_text()
        lines = text.splitlines(keepends=True)
        start = sum(len(line) for line in lines[: node.lineno - 1])
        end = sum(len(line) for line in lines[: node.end_lineno or node.lineno])
        at = text.find(named.find, start, end)
        if at >= 0:
            hits.append((path, text, at))
    if len(hits) != 1:
        raise CheckError(
            f"named mutation {named.name!r}: {named.find!r} found in {len(hits)} function(s) "
            f"called {named.function!r} (exactly one expected); update tools/mutation_targets.py"
        )
    path, text, at = hits[0]
    source = text[:at] + named.replace + text[at + len(named.find) :]
    line = text.count("\n", 0, at) + 1
    return Mutant("named", path, line, named.name, source, named.tests, named=True)


def regions(tree: Path, target: Target) -> list[tuple[str, int, int]]:
    """(path, first line, last line) of the code ``target`` mutates."""
    if not target.functions:
        assert target.path is not None
        length = len((tree / target.path).read_text().splitlines())
        return [(target.path, 1, length)]
    found = []
    for name in target.functions:
        hits = functions_named(tree, name)
        if target.path:
            hits = [(p, n) for p, n in hits if p == target.path]
        if len(hits) != 1:
            raise CheckError(f"target {target.name}: {len(hits)} functions called {name!r}")
        path, node = hits[0]
        found.append((path, node.lineno, node.end_lineno or node.lineno))
    return found


# -- making mutants ----------------------------------------------------------------------------


def compiles(source: str) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except SyntaxError:
        return False
    return True


def mutants_in(tree: Path, target: Target) -> list[Mutant]:
    """Every operator applied once at every place it fits in the target's regions."""
    made: list[Mutant] = []
    for path, first, last in regions(tree, target):
        text = (tree / path).read_text()
        lines = text.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))

        def add(
            line: int, start: int, end: int, new: str, what: str, text: str = text, path=path
        ) -> None:
            source = text[:start] + new + text[end:]
            if compiles(source):
                made.append(Mutant(target.name, path, line, what, source, target.tests))

        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            (row, col), (erow, ecol) = tok.start, tok.end
            if not first <= row <= last:
                continue
            start, end = offsets[row - 1] + col, offsets[erow - 1] + ecol
            if tok.type == tokenize.OP and tok.string in OPERATORS:
                new = OPERATORS[tok.string]
                add(row, start, end, new, f"{tok.string} -> {new}")
            elif tok.type == tokenize.NAME and tok.string in WORDS:
                new = WORDS[tok.string]
                what = f"{tok.string} -> {new}" if new else "not removed"
                add(row, start, end + (0 if new else 1), new, what)
            elif tok.type == tokenize.NUMBER and re.fullmatch(r"\d+(\.\d*)?", tok.string):
                if tok.string.isdigit():
                    new = "0" if tok.string == "1" else str(int(tok.string) + 1)
                else:
                    new = "1.0" if float(tok.string) == 0 else "0.0"
                add(row, start, end, new, f"{tok.string} -> {new}")
        module = ast.parse(text)
        for node in ast.walk(module):
            if not isinstance(node, ast.Expr | ast.Return | ast.Raise):
                continue
            if not first <= node.lineno <= last or node.end_lineno is None:
                continue
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call):
                continue  # docstrings and bare names
            if isinstance(node, ast.Return) and (
                node.value is None
                or (isinstance(node.value, ast.Constant) and node.value.value is None)
            ):
                continue
            head = lines[node.lineno - 1]
            if head[: node.col_offset].strip() or lines[node.end_lineno - 1][
                node.end_col_offset :
            ].strip() not in ("", "\\"):
                continue  # shares its line with other code
            start = offsets[node.lineno - 1] + node.col_offset
            end = offsets[node.end_lineno - 1] + (node.end_col_offset or 0)
            new = "return None" if isinstance(node, ast.Return) else "pass"
            kind = type(node).__name__.lower()
            add(node.lineno, start, end, new, f"{kind} statement -> {new}")
    return made


# -- running the tests -------------------------------------------------------------------------


class Workspace:
    """A private copy of the tree in which one mutant at a time is written."""

    _clock = int(time.time()) + 1000  # mtimes never used before: no stale .pyc is ever reused

    def __init__(self, base: Path, index: int):
        self.root = base / f"tree-{index}"
        shutil.copytree(ROOT, self.root, ignore=SKIP_COPY)

    def write(self, path: str, source: str) -> None:
        file = self.root / path
        file.write_text(source)
        Workspace._clock += 2
        os.utime(file, (Workspace._clock, Workspace._clock))

    def run(self, tests: tuple[str, ...], timeout: float, env: dict[str, str]) -> tuple[str, str]:
        """("passed" | "failed" | "timeout" | "error", the first failing test or a reason)."""
        files = sorted({f for pattern in tests for f in glob.glob(pattern, root_dir=self.root)})
        if not files:
            raise CheckError(f"no test file matches {tests}")
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE"]
        try:
            done = subprocess.run(
                [*command, *files],
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "timeout", f"no result within {timeout:.0f}s"
        if done.returncode == 0:
            return "passed", ""
        failed = re.search(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.M)
        if done.returncode == 1 and failed:
            return "failed", failed.group(1)
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["?"]
        return "error", f"pytest exit {done.returncode}: {tail[0]}"


def check(
    mutants: list[Mutant],
    jobs: int,
    base: Path,
    env: dict[str, str],
    say: Callable[[str], object] = print,
) -> list[Mutant]:
    """Run every mutant (``jobs`` at a time, each in its own workspace) after a green baseline."""
    pool: Queue[Workspace] = Queue()
    for index in range(jobs):
        pool.put(Workspace(base, index))
    limits: dict[tuple[str, ...], float] = {}
    workspace = pool.get()
    for tests in dict.fromkeys(m.tests for m in mutants):
        began = time.monotonic()
        result, why = workspace.run(tests, 900, env)
        if result != "passed":
            raise CheckError(f"the tests fail without any mutation ({' '.join(tests)}): {why}")
        limits[tests] = 3 * (time.monotonic() - began) + 15
        say(f"baseline {' '.join(tests)}: green in {time.monotonic() - began:.1f}s")
    pool.put(workspace)
    done = 0

    def one(mutant: Mutant) -> Mutant:
        nonlocal done
        space = pool.get()
        original = (space.root / mutant.path).read_text()
        try:
            space.write(mutant.path, mutant.source)
            result, why = space.run(mutant.tests, limits[mutant.tests], env)
        finally:
            space.write(mutant.path, original)
            pool.put(space)
        mutant.outcome = "survived" if result == "passed" else "killed"
        mutant.killer = why if result == "failed" else f"{result}: {why}" if why else ""
        done += 1
        mark = "SURVIVED" if mutant.outcome == "survived" else "killed by " + mutant.killer
        say(f"[{done}/{len(mutants)}] {mutant.path}:{mutant.line} {mutant.description}: {mark}")
        return mutant

    with ThreadPoolExecutor(jobs) as executor:
        return list(executor.map(one, mutants))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--named-only", action="store_true", help="only the named mutations")
    parser.add_argument("--target", action="append", choices=[t.name for t in TARGETS])
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="write every mutant's outcome here")
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows through tox and pipes
    began = time.monotonic()
    try:
        mutants = [named_mutant(ROOT, named) for named in NAMED]
        if not args.named_only:
            for target in TARGETS:
                if args.target is None or target.name in args.target:
                    mutants += mutants_in(ROOT, target)
        if args.list:
            for m in mutants:
                print(f"{m.target:10} {m.path}:{m.line} {m.description}")
            return 0
        with tempfile.TemporaryDirectory(prefix="ds01-mutate-") as base:
            env = {**os.environ, "DS01_TEST_DISTS": str(Path(base) / "dists")}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            results = check(mutants, max(1, args.jobs), Path(base), env)
    except CheckError as error:
        print(f"mutation check cannot run: {error}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(
            json.dumps([{k: v for k, v in asdict(m).items() if k != "source"} for m in results])
        )
    return report(results, time.monotonic() - began)


def report(results: list[Mutant], seconds: float) -> int:
    named = [m for m in results if m.named]
    others = [m for m in results if not m.named]
    print(f"\nnamed mutations ({len(named)}):")
    for m in named:
        verdict = f"killed by {m.killer}" if m.outcome == "killed" else "SURVIVED"
        print(f"  {m.description} ({m.path}:{m.line}): {verdict}")
    survivors = [m for m in others if m.outcome == "survived"]
    print(f"\nother mutants: {len(others)}, {len(survivors)} survived")
    for m in survivors:
        print(f"  SURVIVED {m.target}: {m.path}:{m.line} {m.description}")
    for target in dict.fromkeys(m.target for m in others):
        mine = [m for m in others if m.target == target]
        killed = sum(m.outcome == "killed" for m in mine)
        print(f"  {target}: {killed}/{len(mine)} killed")
    print(f"\n{len(results)} mutants in {seconds / 60:.1f} min")
    if any(m.outcome == "survived" for m in named):
        print("a named mutation survived: the tests do not catch it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
