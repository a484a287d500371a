"""gristmill's early defend_the_center curve (seeds 0 and 1, 600k frames) against the seeds
stored by ``doom_trainer.py curves``; run under ``flock /tmp/gristmill-bench.lock``.

Writes bench/results/doom_dtc_early_lag_fix.json: mean reward at 100k-580k frames per run.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doom_trainer as D  # noqa: E402

GRID = [100e3, 200e3, 330e3, 450e3, 580e3]


def at_grid(curve: list) -> list[float]:
    return np.interp(GRID, [x for x, _ in curve], [v for _, v in curve]).round(2).tolist()


def main() -> None:
    args = argparse.Namespace(env="doom_defend_the_center", workers=2, envs=8, extra=[], seconds=0)
    with open(os.path.join(D.ROOT, "bench/results/doom_curves_doom_defend_the_center.json")) as f:
        stored = json.load(f)
    out = {"grid": GRID, "new": []}
    for seed in (0, 1):
        curve = D.run_gristmill(args, 600_000, seed=seed)["curve"]
        out["new"].append({"seed": seed, "at": at_grid(curve), "curve": curve})
        print("gristmill now, seed", seed, out["new"][-1]["at"], flush=True)
    for name, runs in stored["runs"].items():
        out[name] = [at_grid(r["curve"]) for r in runs]
        print(name, "(stored)", out[name])
    with open(os.path.join(D.ROOT, "bench/results/doom_dtc_early_lag_fix.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
