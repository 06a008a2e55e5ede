"""``python -m bench [SUITE ...]``: run benchmark suites (every ``bench/bench_*.py``) and print tables.

Each suite module has ``run(n: int) -> None`` printing Markdown rows via ``bench.harness``.
Example: ``make bench BENCH_ARGS="cli --n 7"``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.harness import HEADER


def main() -> None:
    suites = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"default: all ({', '.join(suites)})")
    parser.add_argument("--n", type=int, default=5, help="repetitions of each side (default 5)")
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(suites))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(suites)}")
    for suite in args.suites or suites:
        print(f"\n## {suite}\n\n{HEADER}\n|---|---|---|---|", flush=True)
        importlib.import_module(f"bench.bench_{suite}").run(args.n)
    sys.exit(0)


if __name__ == "__main__":
    main()
