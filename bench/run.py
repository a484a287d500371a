"""The main job on built-in defaults: run gristmill's benchmarks one after another.

Each benchmark is its own script under bench/ (see BENCHMARKS.md for the full grids);
this runner calls them with their quick defaults so that a fresh machine gets a complete
table in a few minutes. Results print as tables and land as JSON in bench/results/.

    .venv/bin/python bench/run.py            # every benchmark that exists
    .venv/bin/python bench/run.py advantage  # just one
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Order matters only for reading the output; each runs alone (2-core machines).
BENCHMARKS = ["advantage", "queue", "generals"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", default=BENCHMARKS, help=f"benchmarks to run (default: {BENCHMARKS})"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if not (HERE / f"{n}.py").exists()]
    if unknown:
        have = sorted(p.stem for p in HERE.glob("*.py"))
        parser.error(f"unknown benchmark(s) {unknown}; have {have}")
    failed = []
    for name in args.names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"=== bench/{name}.py: exit {rc} in {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
