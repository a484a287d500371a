"""Generals engine throughput: gristmill vs generals-bots 2.5.0, measured in the same run.

Every mode plays both players with uniformly random valid moves (split with p = 0.25), builds
both players' observations and move masks every tick, truncates games at ``--truncation`` ticks
and restarts on a fresh map. Reported: ticks per CPU-second (user+sys of this process or the
peer's; robust on a loaded machine) and per wall-second.

gristmill modes:
- ``batched``: ``GeneralsEngine`` with ``--boards`` boards on one thread, compact observations
  + masks for both players, actions from the Numba random bot (its cost included);
- ``batched+planes``: the same plus ``expand_planes`` to float32 [N, 2, 15, 24, 24] each tick
  (the plane expansion's cost is also reported alone);
- ``batched-parallel``: the same engine and bot on Numba's thread pool (wall clock; run with
  ``OMP_WAIT_POLICY=PASSIVE``, which this script sets by default);
- ``pettingzoo``: one board through ``GeneralsParallelEnv`` (float32 planes + masks), moves
  picked in Python from the masks exactly as for the peer's wrappers.

generals-bots 2.5.0 modes (``bench/_generals_bots_peer.py`` in its own venv, which pins older
numpy/numba): ``core`` (``Game.step`` + observations + ``compute_valid_move_mask``),
``pettingzoo`` and ``gymnasium`` (its wrappers). generals-bots' JAX rewrite is not on PyPI; its
CPU figure (~10 k ticks per CPU-second vmapped, /work/shared/notes/generals.md) is quoted, not
measured.

    flock /tmp/gristmill-bench.lock .venv/bin/python bench/generals.py          # quick defaults
    flock /tmp/gristmill-bench.lock .venv/bin/python bench/generals.py --boards 512 --ticks 2000

Writes JSON to bench/results/generals.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).with_name("_generals_bots_peer.py")
JAX_CPU_TICKS_PER_CPU_S = 10_000  # quoted from the notes (vmap + scan on CPU), not measured


def peer_python() -> Path:
    """The generals-bots 2.5.0 interpreter; creates ``<repo>/.venv-generals`` if missing."""
    venv = Path(os.environ.get("GRISTMILL_GENERALS_VENV", ROOT / ".venv-generals"))
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import importlib.metadata as m; "
             "assert m.version('generals-bots') == '2.5.0'"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} with generals-bots==2.5.0 ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "generals-bots==2.5.0"], check=True)
    return py


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def bench_batched(maps, boards, ticks, trunc, planes=False, parallel=False, seed=0):
    from gristmill.envs.generals import Bot, GeneralsEngine, expand_planes

    eng = GeneralsEngine(boards, maps, truncation=trunc, seed=seed, parallel=parallel,
                         pool_size=min(256, max(16, boards)))
    eng.reset()
    bot = Bot("random", boards, seed=seed, parallel=parallel)
    acts = bot.act(eng.obs, eng.masks, eng.scalars)
    out = np.empty((boards, 2, 15, eng.pad_to, eng.pad_to), np.float32)

    def loop(n):
        for _ in range(n):
            bot.act(eng.obs, eng.masks, eng.scalars, out=acts)
            eng.step(acts, check=False)
            if planes:
                expand_planes(eng.obs, eng.scalars, out, parallel=parallel)

    loop(20)  # warm-up (compile or load the cache)
    cpu, wall = timed(lambda: loop(ticks))
    return {"ticks": boards * ticks, "cpu_s": cpu, "wall_s": wall}


def bench_planes_only(maps, boards, ticks, seed=0):
    from gristmill.envs.generals import GeneralsEngine, expand_planes

    eng = GeneralsEngine(boards, maps, seed=seed, pool_size=16)
    eng.reset()
    out = np.empty((boards, 2, 15, eng.pad_to, eng.pad_to), np.float32)
    expand_planes(eng.obs, eng.scalars, out)
    cpu, wall = timed(lambda: [expand_planes(eng.obs, eng.scalars, out) for _ in range(ticks)])
    return {"ticks": boards * ticks, "cpu_s": cpu, "wall_s": wall}


def bench_pettingzoo(maps, ticks, trunc, seed=0):
    from gristmill.envs.generals import GeneralsParallelEnv

    env = GeneralsParallelEnv(maps=maps, truncation=trunc)
    rng = np.random.default_rng(seed)
    agents = env.possible_agents

    def pick(mask):
        valid = np.argwhere(mask)
        if len(valid) == 0:
            return np.array([1, 0, 0, 0, 0])
        r, c, d = valid[rng.integers(len(valid))]
        return np.array([0, r, c, d, int(rng.random() < 0.25)])

    def loop(n):
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        for _ in range(n):
            acts = {a: pick(obs[a]["move_mask"]) for a in agents}
            obs, _, term, trunc_, _ = env.step(acts)
            if term[agents[0]] or trunc_[agents[0]]:
                obs, _ = env.reset(seed=int(rng.integers(1 << 30)))

    loop(50)
    cpu, wall = timed(lambda: loop(ticks))
    return {"ticks": ticks, "cpu_s": cpu, "wall_s": wall}


def bench_peer(mode, maps, ticks, trunc, seed=0):
    proc = subprocess.run([str(peer_python()), str(PEER), mode, maps, str(ticks), str(trunc),
                           str(seed)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"generals-bots {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rate(r, key):
    return r["ticks"] / r[key] if r[key] > 0 else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", nargs="+", default=["uniform", "generalsio"],
                    choices=("uniform", "generalsio"))
    ap.add_argument("--boards", type=int, default=256, help="boards in the batched engine")
    ap.add_argument("--ticks", type=int, default=400, help="ticks per batched run (per board)")
    ap.add_argument("--single-ticks", type=int, default=3000, help="ticks of single-board runs")
    ap.add_argument("--truncation", type=int, default=500)
    ap.add_argument("--no-peer", action="store_true", help="skip generals-bots")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generals.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(os.cpu_count()))
    # OpenMP's spin-waiting threads burn the other cores between Numba's parallel loops, which
    # on a small or shared machine costs more than the loops gain
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows, results = [], {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                     "python": platform.python_version()}, "runs": []}

    def add(impl, mode, maps, r):
        r = dict(r, impl=impl, mode=mode, maps=maps)
        r["per_cpu_s"], r["per_wall_s"] = rate(r, "cpu_s"), rate(r, "wall_s")
        results["runs"].append(r)
        rows.append(r)
        print(f"  {impl:14s} {mode:18s} {maps:10s} {r['per_cpu_s']:>12,.0f} ticks/CPU-s "
              f"{r['per_wall_s']:>12,.0f} ticks/s", flush=True)
        return r

    for maps in args.maps:
        g = add("gristmill", "batched", maps,
                bench_batched(maps, args.boards, args.ticks, args.truncation))
        gp = add("gristmill", "batched+planes", maps,
                 bench_batched(maps, args.boards, args.ticks, args.truncation, planes=True))
        pl = add("gristmill", "planes only", maps, bench_planes_only(maps, args.boards,
                                                                      args.ticks))
        add("gristmill", "batched-parallel", maps,
            bench_batched(maps, args.boards, args.ticks, args.truncation, parallel=True))
        pz = add("gristmill", "pettingzoo", maps,
                 bench_pettingzoo(maps, args.single_ticks, args.truncation))
        if not args.no_peer:
            core = add("generals-bots", "core", maps,
                       bench_peer("core", maps, args.single_ticks, args.truncation))
            ppz = add("generals-bots", "pettingzoo", maps,
                      bench_peer("pettingzoo", maps, args.single_ticks, args.truncation))
            pgym = add("generals-bots", "gymnasium", maps,
                       bench_peer("gymnasium", maps, args.single_ticks // 2, args.truncation))
            results.setdefault("ratios", {})[maps] = {
                "batched / generals-bots core (CPU-s)": g["per_cpu_s"] / core["per_cpu_s"],
                "batched+planes / generals-bots core": gp["per_cpu_s"] / core["per_cpu_s"],
                "batched / JAX vmap CPU (quoted 10k)": g["per_cpu_s"] / JAX_CPU_TICKS_PER_CPU_S,
                "pettingzoo / generals-bots pettingzoo": pz["per_cpu_s"] / ppz["per_cpu_s"],
                "pettingzoo / generals-bots gymnasium": pz["per_cpu_s"] / pgym["per_cpu_s"],
            }
        results.setdefault("plane_cost_us_per_tick", {})[maps] = 1e6 / pl["per_cpu_s"]

    print("\n| impl | mode | maps | ticks/CPU-s | ticks/s (wall) |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['impl']} | {r['mode']} | {r['maps']} | {r['per_cpu_s']:,.0f} | "
              f"{r['per_wall_s']:,.0f} |")
    for maps, ratios in results.get("ratios", {}).items():
        print(f"\nratios ({maps}):")
        for k, v in ratios.items():
            print(f"  {k}: {v:,.1f}x")
    for maps, us in results["plane_cost_us_per_tick"].items():
        print(f"float32 plane expansion ({maps}): {us:.2f} CPU-us per tick (both players)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
