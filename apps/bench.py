"""``gristmill-bench``: regenerate BENCHMARKS.md's tables, one section or all of them.

Each section of BENCHMARKS.md names its benchmark here; ``gristmill-bench NAME`` runs exactly
the commands that produced that section's table (scripts under the source checkout's
``bench/``, results to ``bench/results/``), one after the other. Without a name it runs the
quick ones (minutes); ``all`` runs every section (hours: the Pong run alone takes ~2.2 h on 2
cores, the Doom sections need Sample Factory 2.1.1 in its own venv).

    gristmill-bench --list            # sections, durations, requirements, commands
    gristmill-bench                   # the quick sections
    gristmill-bench pool doom-speed   # these sections
    gristmill-bench all               # every table of BENCHMARKS.md

On a shared machine, hold a lock around it: ``flock /tmp/gristmill-bench.lock gristmill-bench``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECTIONS", "Section", "main"]

ROOT = Path(__file__).resolve().parents[1]  # the checkout (gristmill's package root)
PY = "{python}"  # replaced by this interpreter


@dataclass(frozen=True)
class Section:
    """One BENCHMARKS.md section: its anchor, how long it takes, what it needs, its commands
    (shell lines run from the checkout's root)."""

    name: str
    anchor: str
    duration: str
    commands: tuple[str, ...]
    quick: bool = False
    needs: str = ""


SECTIONS = [
    Section("advantage", "advantage-kernels", "minutes",
            (f"{PY} bench/advantage.py --full",), quick=True),
    Section("queue", "shared-memory-queue", "minutes",
            (f"{PY} bench/queue.py --repeat 2",), quick=True),
    Section("generals", "generals-engine", "minutes", (
        f"{PY} bench/generals.py",
        f"{PY} -m gristmill.apps.generals table --games 200 --maps generalsio --truncation 1000",
        f"{PY} -m gristmill.apps.generals table --games 200 --maps uniform --truncation 1000",
    ), quick=True, needs="generals-bots 2.5.0 in .venv-generals (made on first use)"),
    Section("pool", "env-pool-vs-envpool", "~25 min", (
        "bash bench/speed_runner.sh 2 3",
        f"{PY} bench/speed_report.py bench/results/speed_main.json bench/results/speed_load.json"
        " bench/results/speed_python.json bench/results/speed_more.json",
    ), needs="envpool (the bench extra)"),
    Section("doom-speed", "doom-trainer-vs-sample-factory", "~15 min", (
        f"{PY} bench/doom_trainer.py components --env doom_defend_the_center --workers 2 --envs 8",
        f"{PY} bench/doom_trainer.py compare --env doom_defend_the_center --workers 2 --envs 8 "
        f"--seconds 150 --repeat 1",
        f"{PY} bench/doom_trainer.py components --env doom_basic --workers 2 --envs 8",
        f"{PY} bench/doom_trainer.py compare --env doom_basic --workers 2 --envs 8 "
        f"--seconds 150 --repeat 1",
    ), needs="Sample Factory 2.1.1 in a venv (bench/doom_trainer.py --sf_python)"),
    Section("doom-curves", "doom-learning-curves-vs-sample-factory", "~45 min", (
        f"{PY} bench/doom_trainer.py curves --env doom_basic --workers 2 --envs 4 "
        "--frames 500000 --seeds 3 --extend --rerun gristmill",
        f"{PY} bench/doom_trainer.py curves --env doom_defend_the_center --workers 2 --envs 8 "
        "--frames 1500000 --seeds 3 --extend --rerun gristmill",
    ), needs="the stored Sample Factory curves in bench/results/ (or its venv, without --rerun)"),
    Section("doom-population", "populations-doom-self-play", "~6 min", (
        f"{PY} bench/doom_trainer.py population --env doom_duel --workers 2 --envs 4 "
        "--seconds 150 --repeat 1",
    )),
    Section("doom-ray", "populations-on-ray", "~12 min", (
        f"{PY} bench/doom_ray.py startup --repeats 3",
        f"{PY} bench/doom_ray.py broadcast --repeats 10 --receivers 3",
        f"{PY} bench/doom_ray.py throughput --seconds 90 --repeats 2",
    ), needs="ray (the ray extra)"),
    Section("pong", "atari-ppo-pong", "~2.2 h", (
        f"{PY} -m gristmill.apps.atari train --env Pong-v5 --train_dir runs/bench --seed 1 "
        "--save_every_sec 60 --stats_every_sec 30",
        f"{PY} bench/atari_curve.py runs/bench/Pong-v5 --out bench/results/pong_curve",
    )),
]


def _list() -> None:
    for s in SECTIONS:
        tag = " (quick)" if s.quick else ""
        print(f"{s.name}{tag}: {s.duration}; BENCHMARKS.md#{s.anchor}")
        if s.needs:
            print(f"  needs {s.needs}")
        for c in s.commands:
            print(f"  {c.format(python='python')}")


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in SECTIONS]
    p = argparse.ArgumentParser(
        prog="gristmill-bench",
        description=__doc__.split("\n")[0],
        epilog=f"sections: {', '.join(names)}",
    )
    p.add_argument("sections", nargs="*", help="section names, or 'all' (default: the quick ones)")
    p.add_argument("--list", action="store_true", help="list the sections and their commands")
    args = p.parse_args(argv)
    if args.list:
        _list()
        return 0
    unknown = [n for n in args.sections if n not in names and n != "all"]
    if unknown:
        p.error(f"unknown section(s) {unknown}; have {names} or 'all'")
    if "all" in args.sections:
        chosen = SECTIONS
    elif args.sections:
        chosen = [s for s in SECTIONS if s.name in args.sections]
    else:
        chosen = [s for s in SECTIONS if s.quick]
    if not (ROOT / "bench").is_dir():
        p.error(f"no bench/ folder under {ROOT}: gristmill-bench runs a source checkout's scripts")
    failed = []
    for s in chosen:
        for cmd in s.commands:
            line = cmd.format(python=sys.executable)
            print(f"\n=== {s.name}: {line}", flush=True)
            start = time.perf_counter()
            rc = subprocess.call(line, shell=True, cwd=ROOT)
            print(f"=== {s.name}: exit {rc} in {time.perf_counter() - start:.0f} s", flush=True)
            if rc != 0:
                failed.append(s.name)
                break
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
