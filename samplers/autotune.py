"""Pick the env pool's layout for a task by measuring it (PufferLib's ``autotune``).

Throughput depends on how many envs each worker steps, how many results ``recv`` waits for and
how many workers share the cores, and the best layout differs per task (a 35 us MuJoCo step
wants few, large batches; a 340 us Atari step hides a small batch's overhead). :func:`autotune`
steps the task with every candidate ``(num_envs, batch_size, num_workers)`` for a few seconds
in EnvPool's loop (``recv``/``send`` when ``batch_size < num_envs``, else ``step``) and returns
the results, best first. ``gristmill-speed --autotune TASK`` prints them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np
from gristmill.kernels import procfs
from gristmill.samplers.pool import make

__all__ = ["autotune", "candidates"]


def candidates(
    cores: int, grid: Sequence[int] = (8, 16, 32, 64), batch_fractions=(1, 2, 4)
) -> list[tuple[int, int, int]]:
    """``(num_envs, batch_size, num_workers)``: num_envs in ``grid``, batch_size = num_envs /
    each of ``batch_fractions``, workers one or two per core."""
    out = []
    for w in sorted({cores, 2 * cores}):
        for n in grid:
            for b in sorted({n // f for f in batch_fractions if n % f == 0}):
                if n >= w and b >= 1:
                    out.append((n, b, w))
    return out


def _cpu(pool) -> float:
    """CPU seconds of this process and the pool's workers so far."""
    return time.process_time() + sum(procfs.cpu_seconds(p) for p in pool.worker_pids())


def _measure(task, n: int, b: int, w: int, seconds: float, warmup: float, kwargs) -> dict:
    pool = make(task, num_envs=n, batch_size=b, num_workers=w, seed=0, **kwargs)
    try:
        pool.action_space.seed(0)
        acts = [np.stack([pool.action_space.sample() for _ in range(b)]) for _ in range(16)]
        asynchronous = b < n
        if asynchronous:
            pool.async_reset()
        else:
            pool.reset()
        steps, i, t_end, t0, cpu0 = 0, 0, None, time.perf_counter(), 0.0
        start = t0 + warmup
        while True:
            now = time.perf_counter()
            if t_end is None and now >= start:
                t_end, steps, t0, cpu0 = now + seconds, 0, now, _cpu(pool)
            if t_end is not None and now >= t_end:
                break
            i = (i + 1) % len(acts)
            if asynchronous:
                info = pool.recv()[4]
                pool.send(acts[i], info["env_id"])
            else:
                pool.step(acts[i])
            steps += b
        wall, cpu = time.perf_counter() - t0, _cpu(pool) - cpu0
        return {
            "num_envs": n,
            "batch_size": b,
            "num_workers": w,
            "steps_per_s": steps / wall,
            "steps_per_cpu_s": steps / max(cpu, 1e-9),
        }
    finally:
        pool.close()


def autotune(
    task: str | Callable,
    cores: int | None = None,
    grid: Sequence[int] = (8, 16, 32, 64),
    seconds: float = 1.5,
    warmup: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    **kwargs,
) -> list[dict]:
    """Measure every :func:`candidates` layout of ``task`` (a task id or env factory, with
    ``kwargs`` for :func:`~gristmill.samplers.make`); returns ``[{num_envs, batch_size,
    num_workers, steps_per_s, steps_per_cpu_s}]``, fastest first (CPU: this process and the
    pool's workers). ``progress(done, total)`` after each."""
    if seconds <= 0 or warmup < 0:
        raise ValueError(f"seconds must be > 0 and warmup >= 0, got {seconds}, {warmup}")
    cores = cores or len(os.sched_getaffinity(0))
    cands = candidates(cores, grid)
    results = []
    for k, (n, b, w) in enumerate(cands):
        results.append(_measure(task, n, b, w, seconds, warmup, kwargs))
        if progress is not None:
            progress(k + 1, len(cands))
    results.sort(key=lambda r: -r["steps_per_s"])
    return results
