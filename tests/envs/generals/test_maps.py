"""Map generators: layouts, and the Numba fresh-map generator against ``MapGenerator``."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from gristmill.envs.generals import GeneralsEngine, MapGenerator, parse_map
from gristmill.envs.generals.maps import CITY, MOUNTAIN


def bfs(terrain, h, w, start, blocked):
    dist = np.full((h, w), -1)
    dist[start] = 0
    q = deque([start])
    while q:
        i, j = q.popleft()
        for a, c in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < h and 0 <= c < w and dist[a, c] < 0 and terrain[a, c] not in blocked:
                dist[a, c] = dist[i, j] + 1
                q.append((a, c))
    return dist


def stats(maps):
    out = []
    for m in maps:
        h, w = m.dims
        t = m.terrain[:h, :w]
        out.append((h, w, np.mean(t == MOUNTAIN), int(np.sum(t == CITY))))
    return np.array(out, float)


def fresh_maps(mode, n, **kw):
    eng = GeneralsEngine(n, MapGenerator(mode, seed=1, **kw), seed=2)
    eng.reset()
    assert (eng.map_id == -2).all(), "every board should get a generated map"
    return [eng.board_map(b) for b in range(n)], eng


@pytest.mark.parametrize("mode", ["uniform", "generalsio"])
def test_fresh_maps_follow_the_generator(mode):
    n = 300
    fresh, eng = fresh_maps(mode, n)
    gen = MapGenerator(mode, seed=3)
    ref = [gen.generate_arrays() for _ in range(n)]
    a, b = stats(fresh), stats(ref)
    for k, name, tol in ((0, "height", 0.6), (1, "width", 0.6), (2, "mountains", 0.01),
                         (3, "cities", 1.5 if mode == "uniform" else 0.25)):
        assert abs(a[:, k].mean() - b[:, k].mean()) < tol, (name, a[:, k].mean(), b[:, k].mean())
    assert a[:, 0].min() == b[:, 0].min() == 18 and a[:, 0].max() == b[:, 0].max() == 23
    for m in fresh:
        h, w = m.dims
        lay = eng.board_layout(0) if m is fresh[0] else None
        if lay is not None:
            assert parse_map(lay).dims == m.dims  # a valid generals-bots layout
        g0, g1 = tuple(m.generals[0]), tuple(m.generals[1])
        d_open = bfs(m.terrain, h, w, g0, (MOUNTAIN, CITY))
        assert d_open[g1] > 0, "generals must be connected avoiding mountains and cities"
        if mode == "uniform":
            assert abs(g0[0] - g1[0]) + abs(g0[1] - g1[1]) >= max(h, w) // 2
        else:
            assert d_open[g1] >= 20
            # 9..11 placed; a general drawn on a mountain that became a city overwrites it
            assert 8 <= np.sum(m.terrain[:h, :w] == CITY) <= 11
            for g in (g0, g1):
                d = bfs(m.terrain, h, w, g, (MOUNTAIN,))
                near = (d > 0) & (d <= 6) & (m.terrain[:h, :w] == CITY)
                assert near.any(), "a city within 6 steps of each general"


def test_fresh_maps_change_between_episodes_and_pool_mode_is_exact():
    eng = GeneralsEngine(2, "uniform", truncation=3, seed=0)
    eng.reset()
    first = [eng.board_layout(b) for b in range(2)]
    a = np.tile([1, 0, 0, 0, 0], (2, 2, 1)).astype(np.int32)
    for _ in range(4):
        eng.step(a)
    assert [eng.board_layout(b) for b in range(2)] != first
    # pool mode: every game is one of GridFactory's draws, in the generator's order
    gen = MapGenerator("generalsio", seed=9)
    pool = GeneralsEngine(1, gen, fresh_maps=False, pool_size=3)
    same = MapGenerator("generalsio", seed=9)
    expected = {same.generate() for _ in range(3)}
    assert len(expected) == 3
    seen = set()
    for seed in range(12):
        pool.reset(seed)
        seen.add(pool.board_layout(0))
    assert seen <= expected and len(seen) > 1
