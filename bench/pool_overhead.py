"""The env pool's own cost per env step: a no-op env, so everything measured is the pool.

Reports, per env step, the wall time and the CPU time of the main process and of the workers
(from /proc), for three no-op envs: a native step (``native_step()``: the worker's compiled
loop steps it without Python, as it does the built-in MuJoCo tasks), the Python fast path
(``step_into``/``reset_into``, as the Atari envs use) and a plain Gymnasium env (``step``
returning a fresh observation). Run under ``flock /tmp/gristmill-bench.lock`` on an idle box::

    .venv/bin/python bench/pool_overhead.py [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np
from gristmill.kernels.procfs import cpu_seconds
from gristmill.samplers import make
from gristmill.samplers._worker_loop import noop_native_step
from gymnasium import spaces


class _Noop(gym.Env):
    observation_space = spaces.Box(0, 255, (4,), np.uint8)
    action_space = spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        return np.zeros(4, np.uint8), {}


class NoopFast(_Noop):
    """Does nothing, through the pool's fast path."""

    def reset_into(self, out, seed=None):
        out[0] = 0

    def step_into(self, action, out):
        return 0.0, False, False


class NoopNative(NoopFast):
    """Does nothing, in C: the worker's loop never calls back into Python for a step."""

    info_spec: dict = {}

    def native_step(self):
        return noop_native_step()


class NoopPython(_Noop):
    """Does nothing, through Gymnasium's ``step``."""

    def __init__(self):
        self._obs = np.zeros(4, np.uint8)

    def step(self, action):
        return self._obs, 0.0, False, False, {}


def measure(factory, num_envs: int, batch_size: int, workers: int, seconds: float) -> dict:
    with make(factory, num_envs=num_envs, batch_size=batch_size, num_workers=workers,
              seed=0) as pool:
        acts = np.zeros(num_envs, np.int64)
        if pool.is_async:
            pool.async_reset()

            def cycle():
                _, _, _, _, info = pool.recv()
                ids = info["env_id"]
                pool.send(acts[:len(ids)], ids)
                return len(ids)
        else:
            pool.reset()

            def cycle():
                pool.step(acts)
                return num_envs

        for _ in range(200):
            cycle()
        pids = pool.worker_pids()
        c0, w0 = cpu_seconds(os.getpid()), sum(map(cpu_seconds, pids))
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                steps += cycle()
        wall = time.perf_counter() - t0
        main_cpu, worker_cpu = cpu_seconds(os.getpid()) - c0, sum(map(cpu_seconds, pids)) - w0
    us = 1e6 / steps
    return {"envs": num_envs, "batch": batch_size, "workers": workers, "steps_per_s": steps / wall,
            "wall_us": wall * us, "main_cpu_us": main_cpu * us, "worker_cpu_us": worker_cpu * us}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    configs = [(16, 8, 2), (32, 16, 2), (8, 8, 2)]  # async, async, sync
    for name, factory in (("native", NoopNative), ("fast path", NoopFast),
                          ("python env", NoopPython)):
        for n, b, w in configs:
            runs = [measure(factory, n, b, w, args.seconds) for _ in range(args.repeats)]
            best = min(runs, key=lambda r: r["wall_us"])
            print(json.dumps({"env": name, **{k: round(v, 2) if isinstance(v, float) else v
                                              for k, v in best.items()}}))


if __name__ == "__main__":
    main()
