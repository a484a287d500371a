"""gristmill-speed: env-stepping throughput of gristmill's pool against EnvPool and Gymnasium.

For each task (default: Pong-v5, Breakout-v5, Ant-v5, HalfCheetah-v5, Humanoid-v5) it opens
every configuration, warms each up, then runs ``--repeats`` rounds of one ``--seconds`` window
per configuration in turn (``--sequential``: each configuration's windows back to back), and
reports the median window of:

* ``raw``: the bare single-core emulator/simulator loop (ALE ``act`` with its internal frame
  skip 4 + one grayscale fetch; MuJoCo ``mj_step(model, data, frame_skip)``, with MuJoCo's
  profiling timers off as in gristmill's envs) -- times the core count, the *physical limit*;
* ``gym-single``: one Gymnasium env with matched preprocessing (Atari: ALE v5 with
  ``frameskip=1`` + ``AtariPreprocessing`` + ``FrameStackObservation``);
* ``gym-sync`` / ``gym-async``: ``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv``;
* ``ale-vector``: ale-py's ``AtariVectorEnv`` (Atari only);
* ``envpool-sync`` / ``envpool-async`` (when envpool is installed) and ``gristmill-sync`` /
  ``gristmill-async`` at several ``num_envs`` (async: ``batch_size = num_envs / k`` for each
  ``k`` batches in flight of ``--async-batches``, default 2; both pools get the same grid).

All drivers send random actions (pre-drawn) in a loop, as a training loop would. Reported:
env steps/s, frames/s (steps x frame skip, EnvPool's FPS convention), env steps per
CPU-second of all processes involved (main + workers + threads; robust on a busy machine),
the ratio to the best EnvPool configuration and to the physical limit. Results go to a JSON
file and a PNG bar chart; a table is printed.

``--load N`` runs N busy-loop processes during the measurement (EnvPool's spinning threads
suffer when a core is taken); ``--autotune`` searches ``num_envs``/``batch_size``/
``num_workers`` of gristmill's pool for one task.

Examples::

    gristmill-speed                                  # the default table
    gristmill-speed --tasks Pong-v5,Ant-v5 --seconds 4 --repeats 3
    gristmill-speed --tasks Pong-v5 --load 1         # with a competing busy loop
    gristmill-speed --python-env                     # CartPole + a slow Python env
    gristmill-speed --autotune Pong-v5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gristmill.kernels import procfs

__all__ = ["main", "measure", "run_table"]

DEFAULT_TASKS = ["Pong-v5", "Breakout-v5", "Ant-v5", "HalfCheetah-v5", "Humanoid-v5"]
SYSTEMS = ["raw", "gym-single", "gym-sync", "gym-async", "ale-vector", "envpool-sync",
           "envpool-async", "gristmill-sync", "gristmill-async"]


# ---- CPU accounting ---------------------------------------------------------------------------
_EXCLUDED: set[int] = set()  # --load busy loops: children, but not part of what is measured


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (all threads) and its live descendants (minus
    the ``--load`` busy loops)."""
    me = os.getpid()
    return sum(procfs.cpu_seconds(p) for p in [me, *procfs.descendants(me)] if p not in _EXCLUDED)


def is_atari(task: str) -> bool:
    return not is_mujoco(task) and task.endswith("-v5")


def is_mujoco(task: str) -> bool:
    from gristmill.envs.mujoco import TASKS

    return task in TASKS


def frame_skip(task: str) -> int:
    if is_mujoco(task):
        from gristmill.envs.mujoco import TASKS

        return TASKS[task].frame_skip
    return 4 if is_atari(task) else 1


def game(task: str) -> str:
    from gristmill.envs.atari import game_of_task

    return game_of_task(task)


# ---- drivers: each returns (step_fn, steps_per_call, close_fn) ----------------------------------
def _actions(space, n: int, k: int = 64) -> list[np.ndarray]:
    space.seed(0)
    return [np.stack([space.sample() for _ in range(n)]) for _ in range(k)]


def drive_raw(task: str, n: int, b: int, w: int):
    if is_atari(task):
        import ale_py

        ale = ale_py.ALEInterface()
        ale.setLoggerMode(ale_py.LoggerMode.Error)
        ale.setInt("frame_skip", 4)
        ale.setFloat("repeat_action_probability", 0.0)
        ale.loadROM(ale_py.roms.get_rom_path(game(task)))
        acts = ale.getMinimalActionSet()
        buf = np.empty(ale.getScreenDims(), np.uint8)
        rng = np.random.default_rng(0)
        seq = [acts[i] for i in rng.integers(0, len(acts), 1024)]
        state = {"i": 0}

        def step():
            i = state["i"] = (state["i"] + 1) & 1023
            ale.act(seq[i])
            ale.getScreenGrayscale(buf)
            if ale.game_over():
                ale.reset_game()
        return step, 1, lambda: None
    import mujoco
    from gristmill.envs.mujoco import make_env

    env = make_env(task)
    env.reset(seed=0)
    m, d, fs = env.model, env.data, env.frame_skip
    rng = np.random.default_rng(0)
    seq = rng.uniform(env.action_space.low, env.action_space.high, (1024, m.nu))
    state = {"i": 0}

    def step():
        i = state["i"] = (state["i"] + 1) & 1023
        d.ctrl[:] = seq[i]
        mujoco.mj_step(m, d, fs)
        if state["i"] == 0:
            mujoco.mj_resetData(m, d)
    return step, 1, lambda: None


def _gym_env_fn(task: str):
    import gymnasium as gym

    if is_atari(task):
        def fn():
            import ale_py
            from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

            gym.register_envs(ale_py)
            env = gym.make(f"ALE/{task}", frameskip=1, repeat_action_probability=0.0,
                           max_episode_steps=108000)
            return FrameStackObservation(AtariPreprocessing(env, noop_max=30), 4)
        return fn
    return lambda: gym.make(task)


def drive_gym_single(task, n, b, w):
    env = _gym_env_fn(task)()
    env.reset(seed=0)
    acts = _actions(env.action_space, 1)
    state = {"i": 0}

    def step():
        i = state["i"] = (state["i"] + 1) & 63
        _, _, term, trunc, _ = env.step(acts[i][0])
        if term or trunc:
            env.reset()
    return step, 1, env.close


def _drive_gym_vector(cls, task, n):
    import gymnasium as gym

    env = cls([_gym_env_fn(task) for _ in range(n)],
              autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    env.reset(seed=0)
    acts = _actions(env.single_action_space, n)
    state = {"i": 0}

    def step():
        i = state["i"] = (state["i"] + 1) & 63
        env.step(acts[i])
    return step, n, env.close


def drive_gym_sync(task, n, b, w):
    import gymnasium as gym

    return _drive_gym_vector(gym.vector.SyncVectorEnv, task, n)


def drive_gym_async(task, n, b, w):
    import gymnasium as gym

    return _drive_gym_vector(gym.vector.AsyncVectorEnv, task, n)


def drive_ale_vector(task, n, b, w):
    from ale_py.vector_env import AtariVectorEnv

    env = AtariVectorEnv(game(task), n, reward_clipping=False, episodic_life=False)
    env.reset(seed=0)
    acts = _actions(env.single_action_space, n)
    state = {"i": 0}

    def step():
        i = state["i"] = (state["i"] + 1) & 63
        env.step(acts[i])
    return step, n, env.close


def _drive_pool(pool, n, b):
    """EnvPool's recv/send loop (async) or step loop (sync); identical for both libraries."""
    space = pool.action_space
    acts = _actions(space, b)
    state = {"i": 0}
    if b < n:
        pool.async_reset()

        def step():
            i = state["i"] = (state["i"] + 1) & 63
            _, _, _, _, info = pool.recv()
            pool.send(acts[i], info["env_id"])
    else:
        pool.reset()

        def step():
            i = state["i"] = (state["i"] + 1) & 63
            pool.step(acts[i])
    return step, b, pool.close


def drive_envpool(task, n, b, w):
    import envpool

    kw = {"num_threads": w} if w else {}
    pool = envpool.make(task, env_type="gymnasium", num_envs=n, batch_size=b, seed=0, **kw)
    return _drive_pool(pool, n, b)


def drive_gristmill(task, n, b, w):
    from gristmill.samplers import make

    pool = make(task, num_envs=n, batch_size=b, num_workers=w or None, seed=0)
    return _drive_pool(pool, n, b)


DRIVERS: dict[str, Callable] = {
    "raw": drive_raw,
    "gym-single": drive_gym_single,
    "gym-sync": drive_gym_sync,
    "gym-async": drive_gym_async,
    "ale-vector": drive_ale_vector,
    "envpool-sync": drive_envpool,
    "envpool-async": drive_envpool,
    "gristmill-sync": drive_gristmill,
    "gristmill-async": drive_gristmill,
}


def _warm(step, seconds: float) -> None:
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        step()


def _window(step, per_call: int, seconds: float) -> tuple[float, float]:
    """One measured window of ``seconds``: (env steps/s, env steps per CPU-second)."""
    calls = 0
    c0, t0 = cpu_seconds(), time.perf_counter()
    t_end = t0 + seconds
    while True:
        for _ in range(8 if per_call > 1 else 64):
            step()
        calls += 8 if per_call > 1 else 64
        now = time.perf_counter()
        if now >= t_end:
            break
    steps = calls * per_call
    return steps / (now - t0), steps / max(cpu_seconds() - c0, 1e-9)


def _row(system, task, n, b, w, rates, per_cpu) -> dict:
    r = statistics.median(rates)
    return {"system": system, "task": task, "num_envs": n, "batch_size": b,
            "num_workers": w, "steps_per_s": r, "frames_per_s": r * frame_skip(task),
            "steps_per_cpu_s": statistics.median(per_cpu), "runs": rates}


def measure(system: str, task: str, num_envs: int = 1, batch_size: int | None = None,
            num_workers: int = 0, seconds: float = 3.0, warmup: float = 1.0,
            repeats: int = 3) -> dict:
    """Run one configuration alone; returns medians of steps/s and steps per CPU-second."""
    b = batch_size or num_envs
    step, per_call, close = DRIVERS[system](task, num_envs, b, num_workers)
    try:
        _warm(step, warmup)
        runs = [_window(step, per_call, seconds) for _ in range(repeats)]
    finally:
        close()
    return _row(system, task, num_envs, b, num_workers, [r for r, _ in runs],
                [c for _, c in runs])


def measure_interleaved(task: str, plan: list[tuple], seconds: float, warmup: float,
                        repeats: int, progress=None) -> list[dict]:
    """Every configuration of ``plan`` (``(system, num_envs, batch_size, workers)``) opened
    at once, then ``repeats`` rounds of one window per configuration in turn, so that a
    drift of the machine's speed (other tenants, clocks: +-30 % over tens of seconds on a
    shared VM) hits every system alike instead of whichever ran during it. Before each
    window the configuration runs ``min(warmup, 0.5)`` s unmeasured: that drains the batches
    its pool finished while idle and the previous pool's in-flight work. Idle pools block
    (no spinning), so they cost the measured one nothing."""
    opened, results = [], []
    try:
        for system, n, b, w in plan:
            try:
                step, per_call, close = DRIVERS[system](task, n, b, w)
            except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
                results.append({"system": system, "task": task, "num_envs": n,
                                "batch_size": b, "num_workers": w, "error": repr(e)})
                continue
            opened.append(((system, n, b, w), step, per_call, close, [], []))
            _warm(step, warmup)
        for _ in range(repeats):
            for cfg, step, per_call, _close, rates, per_cpu in opened:
                if progress:
                    progress(f"{task} {cfg[0]} n={cfg[1]} b={cfg[2]}")
                _warm(step, min(warmup, 0.5))
                rate, cpu = _window(step, per_call, seconds)
                rates.append(rate)
                per_cpu.append(cpu)
    finally:
        for *_, close, _r, _c in opened:
            close()
    results += [_row(cfg[0], task, *cfg[1:], rates, per_cpu)
                for cfg, _s, _p, _c, rates, per_cpu in opened]
    return results


# ---- the table --------------------------------------------------------------------------------
def configs(task: str, systems: list[str], grid: list[int], cores: int, have_envpool: bool,
            batches=(2,), workers=None):
    """``(system, num_envs, batch_size, workers)`` to measure. ``workers``: the pools'
    worker-process / thread counts to try (both pools get the same list); None: gristmill
    one per core, EnvPool its default."""
    out = []
    for s in systems:
        if s == "ale-vector" and not is_atari(task):
            continue
        if s.startswith("envpool") and not have_envpool:
            continue
        pool_w = list(workers) if workers else [cores if s.startswith("gristmill") else 0]
        if s in ("raw", "gym-single"):
            out.append((s, 1, 1, 0))
        elif s in ("gym-sync", "gym-async", "ale-vector"):
            for n in sorted({cores, 2 * cores, 4 * cores}):
                out.append((s, n, n, 0))
        elif s.endswith("-sync"):
            for n in grid:
                out.extend((s, n, n, w) for w in pool_w if w <= n)
        elif s.endswith("-async"):
            for n in grid:
                for k in batches:  # batches in flight: both pools get the same choices
                    if n >= k * cores and n % k == 0:
                        out.extend((s, n, n // k, w) for w in pool_w if w <= n)
    return out


def _start_load(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    _EXCLUDED.update(p.pid for p in procs)
    return procs


def run_table(tasks, systems, grid, seconds, warmup, repeats, cores, load=0,
              progress=True, batches=(2,), workers=None, interleave=True) -> list[dict]:
    """Measure every configuration of every task; ``interleave`` (default): per task, the
    configurations' windows alternate round by round (:func:`measure_interleaved`), else
    each configuration runs its windows alone, one after the other."""
    try:
        import envpool  # noqa: F401
        have_envpool = True
    except ImportError:
        have_envpool = False
    plan = [(t, c) for t in tasks
            for c in configs(t, systems, grid, cores, have_envpool, batches, workers)]
    if not all(is_atari(t) for t in tasks):
        # MuJoCo's profiling timers off for every in-process system (raw, gym-single, gym-sync),
        # as gristmill's MuJoCo envs have them (EnvPool's MuJoCo build times nothing either)
        from gristmill.envs.mujoco import disable_profiling_timers

        disable_profiling_timers()
    results = []
    loaders = _start_load(load)
    try:
        from rich.progress import Progress

        with Progress(disable=not progress, transient=False) as bar:
            job = bar.add_task("benchmarking", total=len(plan) * (repeats if interleave else 1))
            if interleave:
                def tick(desc):
                    bar.update(job, description=desc)
                    bar.advance(job)

                for task in dict.fromkeys(t for t, _ in plan):
                    results += measure_interleaved(task, [c for t, c in plan if t == task],
                                                   seconds, warmup, repeats, tick)
            for task, (system, n, b, w) in ([] if interleave else plan):
                bar.update(job, description=f"{task} {system} n={n} b={b}")
                try:
                    res = measure(system, task, n, b, w, seconds, warmup, repeats)
                except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
                    res = {"system": system, "task": task, "num_envs": n, "batch_size": b,
                           "num_workers": w, "error": repr(e)}
                results.append(res)
                bar.advance(job)
    finally:
        for p in loaders:
            p.kill()
            p.wait()
    for res in results:
        res["load"] = load
    add_ratios(results, cores)
    return results


def add_ratios(results: list[dict], cores: int) -> None:
    """Ratios to the best EnvPool config and to the physical limit: the raw single-core loop
    x ``cores``, in wall-clock (``of_limit``, the issue's definition) and from the raw
    loop's steps per CPU-second (``of_cpu_limit``: what ``cores`` free cores would give;
    robust when other processes share the machine). ``cpu_efficiency``: steps per CPU-second
    over the raw loop's."""
    for task in {r["task"] for r in results}:
        rows = [r for r in results if r["task"] == task and "error" not in r]
        raw = [r for r in rows if r["system"] == "raw"]
        ep = [r["steps_per_s"] for r in rows if r["system"].startswith("envpool")]
        for r in rows:
            if raw:
                r["limit_steps_per_s"] = raw[0]["steps_per_s"] * cores
                r["of_limit"] = r["steps_per_s"] / r["limit_steps_per_s"]
                r["of_cpu_limit"] = r["steps_per_s"] / (raw[0]["steps_per_cpu_s"] * cores)
                r["cpu_efficiency"] = r["steps_per_cpu_s"] / raw[0]["steps_per_cpu_s"]
            if ep:
                r["vs_envpool_best"] = r["steps_per_s"] / max(ep)


def print_table(results: list[dict]) -> None:
    from gristmill.apps.console import make_console
    from rich.table import Table

    table = Table(title="env steps/s (median); frames = steps x frame skip")
    for col in ("task", "system", "envs", "batch", "steps/s", "frames/s", "steps/CPU-s",
                "CPU eff.", "of limit", "of CPU limit", "vs EnvPool best"):
        table.add_column(col, justify="right" if col not in ("task", "system") else "left")
    for r in results:
        if "error" in r:
            table.add_row(r["task"], r["system"], str(r["num_envs"]), str(r["batch_size"]),
                          "error", r["error"][:40], "", "", "", "", "")
            continue
        def f(k, r=r):
            return f"{r[k]:.2f}" if k in r else "-"
        table.add_row(r["task"], r["system"], str(r["num_envs"]), str(r["batch_size"]),
                      f"{r['steps_per_s']:,.0f}", f"{r['frames_per_s']:,.0f}",
                      f"{r['steps_per_cpu_s']:,.0f}", f("cpu_efficiency"), f("of_limit"),
                      f("of_cpu_limit"), f("vs_envpool_best"))
    make_console(sys.stdout).print(table)  # whole rows in a file or pipe too


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results})
    fig, axes = plt.subplots(len(tasks), 1, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        rows = [r for r in results if r["task"] == task and "error" not in r]
        best: dict[str, dict] = {}
        for r in rows:
            if r["system"] not in best or r["steps_per_s"] > best[r["system"]]["steps_per_s"]:
                best[r["system"]] = r
        names = [s for s in SYSTEMS if s in best]
        vals = [best[s]["steps_per_s"] for s in names]
        colors = ["tab:green" if s.startswith("gristmill") else
                  "tab:red" if s.startswith("envpool") else "tab:gray" for s in names]
        ax.barh(names, vals, color=colors)
        if "limit_steps_per_s" in best.get("raw", {}):
            ax.axvline(best["raw"]["limit_steps_per_s"], color="k", ls="--", lw=1,
                       label="physical limit")
            ax.legend(loc="lower right")
        ax.set_title(f"{task}: best env steps/s per system")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- Python envs ------------------------------------------------------------------------------
def python_env_table(seconds, warmup, repeats, cores) -> list[dict]:
    import gymnasium as gym
    from gristmill.samplers import make

    out = []
    from gristmill.samplers.perf_env import PerformanceEnv

    envs = (("CartPole-v1", lambda: gym.make("CartPole-v1")), ("SlowEnv-0.5ms", PerformanceEnv))
    for name, fn in envs:
        for n in (cores, 4 * cores):
            for system in ("gym-async", "gristmill-sync", "gristmill-async"):
                b = n // 2 if system == "gristmill-async" else n
                if system == "gym-async":
                    env = gym.vector.AsyncVectorEnv(
                        [fn] * n, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
                    env.reset(seed=0)
                    acts = _actions(env.single_action_space, n)

                    def step(env=env, acts=acts, st={"i": 0}):  # noqa: B006
                        st["i"] = (st["i"] + 1) & 63
                        env.step(acts[st["i"]])
                    drv = (step, n, env.close)
                else:
                    pool = make(fn, num_envs=n, batch_size=b, num_workers=cores, seed=0)
                    drv = _drive_pool(pool, n, b)
                DRIVERS["_tmp"] = lambda *a, d=drv: d
                try:
                    r = measure("_tmp", name, n, b, cores, seconds, warmup, repeats)
                finally:
                    DRIVERS.pop("_tmp", None)
                r["system"] = system
                out.append(r)
    for name in ("CartPole-v1", "SlowEnv-0.5ms"):
        rows = [r for r in out if r["task"] == name]
        ref = max(r["steps_per_s"] for r in rows if r["system"] == "gym-async")
        for r in rows:
            r["vs_gym_async_best"] = r["steps_per_s"] / ref
    return out


# ---- autotune ---------------------------------------------------------------------------------
def autotune(task: str, cores: int, grid=(8, 16, 32, 64), seconds: float = 1.5,
             progress=True) -> list[dict]:
    """:func:`gristmill.samplers.autotune.autotune` with a progress bar; results best first."""
    from gristmill.samplers.autotune import autotune as tune
    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        job = bar.add_task(f"autotune {task}", total=None)
        return tune(task, cores, grid, seconds, min(0.5, seconds),
                    progress=lambda done, total: bar.update(job, completed=done, total=total))


# ---- CLI --------------------------------------------------------------------------------------
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="gristmill-speed", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (python -m gristmill.apps.speed_runner --help).")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help="comma-separated task ids (default: %(default)s)")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated subset of: " + ", ".join(SYSTEMS))
    p.add_argument("--num-envs", default="8,16,32", help="num_envs grid for the pools")
    p.add_argument("--async-batches", default="2",
                   help="comma-separated batches in flight: async pools run batch_size = "
                        "num_envs / each (default 2)")
    p.add_argument("--workers", default="",
                   help="comma-separated worker counts for both pools (gristmill num_workers, "
                        "EnvPool num_threads); default: gristmill one per core, EnvPool its "
                        "own default")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per measured window")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per config")
    p.add_argument("--repeats", type=int, default=3, help="windows per config (median)")
    p.add_argument("--sequential", action="store_true",
                   help="run each configuration's windows back to back instead of "
                        "alternating every configuration of a task round by round (the "
                        "default, robust to the machine's speed drifting during the run)")
    p.add_argument("--cores", type=int, default=_cores(), help="cores for the physical limit "
                   "and the worker/thread counts (default: available cores)")
    p.add_argument("--load", type=int, default=0,
                   help="busy-loop processes competing for CPU during the run")
    p.add_argument("--python-env", action="store_true",
                   help="also compare Python envs (CartPole-v1, a 0.5 ms slow env) against "
                        "gymnasium's AsyncVectorEnv")
    p.add_argument("--autotune", metavar="TASK", help="search num_envs/batch_size/num_workers "
                   "of gristmill's pool for TASK and exit")
    p.add_argument("--out", default="bench/results/speed_runner",
                   help="output prefix: writes PREFIX.json and PREFIX.png")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress

    if args.autotune:
        grid = [int(x) for x in args.num_envs.split(",") if x]
        res = autotune(args.autotune, args.cores, grid, seconds=args.seconds, progress=progress)
        for r in res[:10]:
            print(f"num_envs={r['num_envs']:3d} batch_size={r['batch_size']:3d} "
                  f"num_workers={r['num_workers']}: {r['steps_per_s']:,.0f} steps/s "
                  f"({r['steps_per_cpu_s']:,.0f} per CPU-s)")
        out.with_suffix(".autotune.json").write_text(json.dumps(res, indent=1))
        best = res[0]
        print(f"best: gristmill.samplers.make({args.autotune!r}, num_envs={best['num_envs']}, "
              f"batch_size={best['batch_size']}, num_workers={best['num_workers']})")
        return 0

    tasks = [t for t in args.tasks.split(",") if t]
    systems = [s for s in args.systems.split(",") if s]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        p.error(f"unknown systems {bad}; choose from {SYSTEMS}")
    grid = [int(x) for x in args.num_envs.split(",") if x]
    try:
        batches = sorted({int(x) for x in args.async_batches.split(",") if x})
    except ValueError:
        p.error(f"--async-batches takes integers, got {args.async_batches!r}")
    if not batches or min(batches) < 1:
        p.error(f"--async-batches must be >= 1, got {args.async_batches!r}")
    try:
        workers = sorted({int(x) for x in args.workers.split(",") if x}) or None
    except ValueError:
        p.error(f"--workers takes integers, got {args.workers!r}")
    if workers and min(workers) < 1:
        p.error(f"--workers must be >= 1, got {args.workers!r}")
    meta = {"cores": args.cores, "load": args.load, "seconds": args.seconds,
            "repeats": args.repeats, "interleaved": not args.sequential,
            "command": " ".join(sys.argv),
            "loadavg_before": os.getloadavg()}
    results = run_table(tasks, systems, grid, args.seconds, args.warmup, args.repeats,
                        args.cores, args.load, progress, batches, workers,
                        interleave=not args.sequential)
    print_table(results)
    payload = {"meta": meta, "results": results}
    if args.python_env:
        py = python_env_table(args.seconds, args.warmup, args.repeats, args.cores)
        payload["python_envs"] = py
        for r in py:
            print(f"{r['task']:14s} {r['system']:16s} n={r['num_envs']:2d} "
                  f"{r['steps_per_s']:>10,.0f} steps/s  {r['steps_per_cpu_s']:>10,.0f}/CPU-s  "
                  f"x{r['vs_gym_async_best']:.2f} vs best AsyncVectorEnv")
    meta["loadavg_after"] = os.getloadavg()
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    try:
        plot(results, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed: no chart")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
