"""Chaos: gristmill's apps and engines under faults that keep coming, with the books checked.

Each scenario runs a real workload while a seeded chaos loop injects faults, then reports run
length, faults injected and survived, what was lost, and throughput against the same run
without faults. Scenarios run one by one::

    python bench/chaos.py doom-kills --seeds 3              # issue 20's learning check

``doom-kills``: ``gristmill-doom train`` on doom_basic (2 workers x 4 envs, 450k frames) with a
rollout worker SIGKILLed every 8-15 s from 25 s on, against the same run without kills, over
several seeds; the mean reward of the last 100 episodes must stay within the seed spread of
the runs without kills. Results: ``bench/results/chaos_doom_kills.json`` and a Markdown table.
Run benchmarks one at a time: ``flock /tmp/gristmill-bench.lock python bench/chaos.py ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gristmill.kernels import procfs

RESULTS = Path(__file__).parent / "results"


class Chaos(threading.Thread):
    """Every ``U[lo, hi]`` seconds from ``start`` on, ``fault(rng)`` (seeded); stops on
    ``stop()``. ``log`` holds ``(seconds since start, what was done)``."""

    def __init__(self, fault, seed: int, start: float, every: tuple[float, float]):
        super().__init__(daemon=True)
        self.fault, self.rng = fault, random.Random(seed)
        self.start_after, self.every = start, every
        self.halt = threading.Event()
        self.log: list[tuple[float, str]] = []
        self.t0 = time.time()

    def run(self) -> None:
        if self.halt.wait(self.start_after):
            return
        while not self.halt.is_set():
            what = self.fault(self.rng)
            if what:
                self.log.append((round(time.time() - self.t0, 1), what))
            if self.halt.wait(self.rng.uniform(*self.every)):
                return

    def stop(self) -> None:
        self.halt.set()
        self.join()


def rollout_workers(trainer_pid: int) -> list[int]:
    """The trainer's live rollout worker processes (its python children; games are theirs)."""
    return [
        c
        for c in procfs.children(trainer_pid)
        if procfs.alive(c) and (s := procfs.stat(c)) is not None and s.comm != "vizdoom"
    ]


def kill_a_worker(trainer_pid: int):
    def fault(rng: random.Random) -> str | None:
        workers = rollout_workers(trainer_pid)
        if not workers:
            return None
        pid = rng.choice(workers)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return f"SIGKILL rollout worker {pid}"

    return fault


def doom_run(seed: int, frames: int, faults: bool, every, start: float, train_dir: str) -> dict:
    cmd = [
        sys.executable, "-m", "gristmill.apps.doom", "train", "--env", "doom_basic", "--num_workers", "2",
        "--num_envs_per_worker", "4", "--train_for_env_steps", str(frames), "--seed", str(seed),
        "--train_dir", train_dir, "--experiment", f"s{seed}_{'kills' if faults else 'clean'}",
        "--quiet", "--restart", "true",
    ]  # fmt: skip
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chaos = Chaos(kill_a_worker(proc.pid), seed, start, every) if faults else None
    if chaos:
        chaos.start()
    out, err = proc.communicate()
    if chaos:
        chaos.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads(lines[-1])
    return {
        "seed": seed,
        "faults": faults,
        "kills": len(chaos.log) if chaos else 0,
        "kill_log": chaos.log if chaos else [],
        "wall_s": round(time.time() - t0, 1),
        "summary": summary,
    }


def _mean_std(xs):
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)) ** 0.5
    return m, sd


def doom_kills(args) -> dict:
    runs = []
    with tempfile.TemporaryDirectory(prefix="gristmill_chaos_") as train_dir:
        for seed in range(args.seeds):
            for faults in (False, True):
                r = doom_run(seed, args.frames, faults, args.every, args.start, train_dir)
                s = r["summary"]
                print(
                    f"seed {seed} {'kills' if faults else 'clean'}: reward "
                    f"{s.get('reward_mean_100')} fps {s.get('fps'):.0f} kills {r['kills']} "
                    f"restarts {s.get('worker_restarts')} wall {r['wall_s']} s",
                    flush=True,
                )
                runs.append(r)
    clean = [r["summary"]["reward_mean_100"] for r in runs if not r["faults"]]
    kills = [r["summary"]["reward_mean_100"] for r in runs if r["faults"]]
    (cm, cs), (km, ks) = _mean_std(clean), _mean_std(kills)
    fps_c = _mean_std([r["summary"]["fps"] for r in runs if not r["faults"]])[0]
    fps_k = _mean_std([r["summary"]["fps"] for r in runs if r["faults"]])[0]
    result = {
        "scenario": "doom-kills",
        "frames": args.frames,
        "every_s": list(args.every),
        "start_s": args.start,
        "runs": runs,
        "reward_clean": {"mean": cm, "std": cs, "min": min(clean), "max": max(clean)},
        "reward_kills": {"mean": km, "std": ks, "min": min(kills), "max": max(kills)},
        "fps_ratio_under_fire": fps_k / fps_c,
        "within_seed_spread": min(clean) - cs <= km,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chaos_doom_kills.json").write_text(json.dumps(result, indent=1))
    print("\n| seed | reward, no kills | reward, kills | kills | fps ratio |")
    print("|---:|---:|---:|---:|---:|")
    for seed in range(args.seeds):
        c = next(r for r in runs if r["seed"] == seed and not r["faults"])
        k = next(r for r in runs if r["seed"] == seed and r["faults"])
        print(
            f"| {seed} | {c['summary']['reward_mean_100']:.3f} | "
            f"{k['summary']['reward_mean_100']:.3f} | {k['kills']} | "
            f"{k['summary']['fps'] / c['summary']['fps']:.2f} |"
        )
    print(f"| mean | {cm:.3f} ± {cs:.3f} | {km:.3f} ± {ks:.3f} | | {fps_k / fps_c:.2f} |")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="scenario", required=True)
    d = sub.add_parser("doom-kills", help="Doom training with rollout workers SIGKILLed")
    d.add_argument("--seeds", type=int, default=3)
    d.add_argument("--frames", type=int, default=450_000)
    d.add_argument("--every", type=float, nargs=2, default=(8.0, 15.0), help="seconds between")
    d.add_argument("--start", type=float, default=25.0, help="first fault after this")
    args = p.parse_args(argv)
    if args.scenario == "doom-kills":
        doom_kills(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
