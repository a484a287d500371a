"""The env pool's restart mode under repeated worker kills, as a user runs it (issue 21).

An EnvPool loop (``recv``, random actions, ``send(actions, info["env_id"])``) on
``make(task, num_envs=16, batch_size=8, num_workers=2, on_error="restart")`` while a thread
SIGKILLs a random worker every 4-8 s. Every batch is checked: an env twice in one batch, an
``elapsed_step`` that does not follow the env's previous one, and a restart's first
observation not flagged ``truncated``. Prints one JSON line; the exit status is 1 if any
check failed. Before the fix of issue 21 a run of 90 s failed after 2-6 kills::

    .venv/bin/python bench/pool_restart_soak.py [--task Pong-v5] [--seconds 90]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import warnings

import numpy as np
from gristmill.samplers import make


def soak(task: str, seconds: float, kill_every: tuple[float, float], num_envs: int,
         batch_size: int, workers: int, seed: int) -> dict:
    warnings.simplefilter("ignore", RuntimeWarning)  # one "restarting" warning per kill
    pool = make(task, num_envs=num_envs, batch_size=batch_size, num_workers=workers, seed=seed,
                on_error="restart", max_restarts=10**6)
    stop, kills = threading.Event(), [0]
    rng = random.Random(seed)

    def killer():
        while not stop.wait(rng.uniform(*kill_every)):
            try:
                os.kill(rng.choice(pool.worker_pids()), signal.SIGKILL)
                kills[0] += 1
            except ProcessLookupError:  # being replaced right now
                pass

    last = np.full(num_envs, -1)
    done = np.zeros(num_envs, bool)
    out = {"task": task, "batches": 0, "steps": 0, "cut_episodes": 0, "failures": []}
    t0 = time.monotonic()
    thread = threading.Thread(target=killer, daemon=True)
    try:
        pool.async_reset()
        thread.start()
        while time.monotonic() - t0 < seconds and not out["failures"]:
            _, _, term, trunc, info = pool.recv()
            ids, el = info["env_id"].copy(), info["elapsed_step"].copy()
            out["batches"] += 1
            out["steps"] += len(ids)
            if len(set(ids.tolist())) != len(ids):
                out["failures"].append(f"env twice in a batch: {ids.tolist()} {el.tolist()}")
            for e, s, te, tr in zip(ids.tolist(), el.tolist(), term.tolist(), trunc.tolist(),
                                    strict=True):
                if s == 0 and last[e] >= 0 and not done[e]:
                    out["cut_episodes"] += 1
                    if not tr:
                        out["failures"].append(f"env {e}: episode cut at {last[e]} unflagged")
                elif s != 0 and s != last[e] + 1:
                    out["failures"].append(f"env {e}: elapsed_step {last[e]} -> {s}")
                last[e], done[e] = s, s > 0 and (te or tr)
            pool.send(np.array([pool.action_space.sample() for _ in ids]), ids)
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        out["failures"].append(f"{type(exc).__name__}: {exc}"[:300])
    finally:
        stop.set()
        thread.join()
        out.update(seconds=round(time.monotonic() - t0, 1), kills=kills[0],
                   restarts=pool.restarts)
        pool.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="Pong-v5")
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--kill-every", type=float, nargs=2, default=(4.0, 8.0))
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    out = soak(a.task, a.seconds, tuple(a.kill_every), a.num_envs, a.batch_size, a.workers,
               a.seed)
    print(json.dumps(out))
    return 1 if out["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
