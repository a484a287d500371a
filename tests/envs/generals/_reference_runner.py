"""Runs games through generals-bots 2.5.0 (in its own venv) for the differential test.

Usage: python _reference_runner.py IN.npz OUT.npz
IN holds ``maps`` (object array of layouts), ``actions_<g>`` int [T, 2, 5] per game, ``planes``
(game indices whose observation tensors are dumped) and ``gen_specs`` (mode, seed, min, max)
for GridFactory map generation. OUT holds per game ``army_<g>`` int32 [T+1, h, w], ``owner_<g>``
int8 (-1 neutral), ``time_<g>``, ``winner_<g>`` int8 [T+1] (stops at game end),
``planes_<g>`` float32 [T+1, 2, 15, 24, 24] and ``masks_<g>`` [T+1, 2, 24, 24, 4] for the
requested games, and ``generated`` (layouts from GridFactory).
"""

import sys

import numpy as np
from generals.core.action import compute_valid_move_mask
from generals.core.game import Game
from generals.core.grid import Grid, GridFactory

AGENTS = ["p0", "p1"]


def snapshot(game):
    ch = game.channels
    owner = np.full(game.grid_dims, -1, np.int8)
    owner[ch.ownership["p0"]] = 0
    owner[ch.ownership["p1"]] = 1
    w = -1 if game.winner is None else AGENTS.index(game.winner)
    return ch.armies.astype(np.int32), owner, game.time, w


def main(inp, outp):
    data = np.load(inp, allow_pickle=True)
    maps = data["maps"]
    want_planes = set(int(g) for g in data["planes"])
    out = {}
    for g, layout in enumerate(maps):
        game = Game(Grid(str(layout)), AGENTS)
        acts = data[f"actions_{g}"]
        arm, own, tim, win, planes, masks = [], [], [], [], [], []

        def record(obs=None, game=game, g=g, arm=arm, own=own, tim=tim, win=win, planes=planes,
                   masks=masks):
            a, o, t, w = snapshot(game)
            arm.append(a)
            own.append(o)
            tim.append(t)
            win.append(w)
            if g in want_planes:
                if obs is None:
                    obs = {ag: game.agent_observation(ag) for ag in AGENTS}
                pl, mk = [], []
                for ag in AGENTS:
                    obs[ag].pad_observation(24)
                    pl.append(obs[ag].as_tensor().astype(np.float32))
                    mk.append(compute_valid_move_mask(obs[ag]))
                planes.append(np.stack(pl))
                masks.append(np.stack(mk))

        record()
        for t in range(len(acts)):
            obs, _ = game.step({AGENTS[p]: acts[t, p].astype(np.int64) for p in range(2)})
            record(obs)
            if game.is_done():
                break
        out[f"army_{g}"] = np.stack(arm)
        out[f"owner_{g}"] = np.stack(own)
        out[f"time_{g}"] = np.array(tim, np.int32)
        out[f"winner_{g}"] = np.array(win, np.int8)
        if g in want_planes:
            out[f"planes_{g}"] = np.stack(planes)
            out[f"masks_{g}"] = np.stack(masks)
    generated = []
    for mode, seed, lo, hi in data["gen_specs"]:
        f = GridFactory(mode=str(mode), seed=int(seed), min_grid_dims=(int(lo), int(lo)),
                        max_grid_dims=(int(hi), int(hi)))
        generated.append(str(f.generate()))
    out["generated"] = np.array(generated, dtype=object)
    np.savez_compressed(outp, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
