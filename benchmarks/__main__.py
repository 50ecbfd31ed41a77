"""Run benchmarks: ``python -m benchmarks`` runs every ``benchmarks/bench_*.py``;
``python -m benchmarks gateway state`` runs ``bench_gateway`` and ``bench_state`` only."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """The benchmark names: ``bench_<name>.py`` files beside this one."""
    return sorted(path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
    selected = args.names or names
    if not selected:
        print("no benchmarks yet (benchmarks/bench_*.py)")
        return 0

    failed = []
    for name in selected:
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.bench_{name}").main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"-- {name}: {time.perf_counter() - start:.1f} s\n", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
