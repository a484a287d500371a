"""generals-bots 2.5.0 side of bench/generals.py; runs in the generals-bots venv.

Usage: python _generals_bots_peer.py MODE MAPS TICKS TRUNCATION SEED  -> one JSON line.
MODE: ``core`` (``Game.step`` + both observations + ``compute_valid_move_mask`` for both),
``pettingzoo`` (``PettingZooGenerals.step``; masks computed from its observations, as its users
must) or ``gymnasium`` (``GymnasiumGenerals.step``; masks from its infos). Both players play
uniformly random valid moves (split with p = 0.25) chosen from the masks; games truncate at
TRUNCATION ticks and restart on a fresh map.
"""

import json
import os
import sys
import time

# bench/generals.py sits beside this file: keep this folder off sys.path so that
# ``import generals`` finds generals-bots, not the benchmark script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import numpy as np  # noqa: E402
from generals.core.action import compute_valid_move_mask  # noqa: E402
from generals.core.game import Game  # noqa: E402
from generals.core.grid import GridFactory  # noqa: E402

AGENTS = ["p0", "p1"]


def pick(mask, rng):
    valid = np.argwhere(mask)
    if len(valid) == 0:
        return np.array([1, 0, 0, 0, 0], np.int8)
    r, c, d = valid[rng.integers(len(valid))]
    return np.array([0, r, c, d, int(rng.random() < 0.25)], np.int8)


def run_core(factory, ticks, trunc, rng):
    game = Game(factory.generate(), AGENTS)
    obs = {a: game.agent_observation(a) for a in AGENTS}
    for _ in range(ticks):
        acts = {a: pick(compute_valid_move_mask(obs[a]), rng) for a in AGENTS}
        obs, _ = game.step(acts)
        if game.is_done() or game.time >= trunc:
            game = Game(factory.generate(), AGENTS)
            obs = {a: game.agent_observation(a) for a in AGENTS}


def run_pettingzoo(factory, ticks, trunc, rng):
    from generals.envs import PettingZooGenerals

    env = PettingZooGenerals(agents=AGENTS, grid_factory=factory, truncation=trunc)
    obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    for _ in range(ticks):
        acts = {a: pick(compute_valid_move_mask(obs[a]), rng) for a in AGENTS}
        obs, _, term, trunc_, _ = env.step(acts)
        if term or trunc_:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))


def run_gymnasium(factory, ticks, trunc, rng):
    from generals.envs import GymnasiumGenerals

    env = GymnasiumGenerals(agents=AGENTS, grid_factory=factory, truncation=trunc)
    _, info = env.reset(seed=int(rng.integers(1 << 30)))
    for _ in range(ticks):
        acts = [pick(info[a]["masks"], rng) for a in AGENTS]
        _, _, term, trunc_, info = env.step(acts)
        if term or trunc_:
            _, info = env.reset(seed=int(rng.integers(1 << 30)))


def main():
    mode, maps, ticks, trunc, seed = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    rng = np.random.default_rng(seed)
    factory = GridFactory(mode=maps, seed=seed)
    fn = {"core": run_core, "pettingzoo": run_pettingzoo, "gymnasium": run_gymnasium}[mode]
    fn(factory, 50, trunc, rng)  # warm-up (numba caches, imports)
    c0, w0 = time.process_time(), time.perf_counter()
    fn(factory, ticks, trunc, rng)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"mode": mode, "maps": maps, "ticks": ticks, "cpu_s": cpu, "wall_s": wall}))


if __name__ == "__main__":
    main()
