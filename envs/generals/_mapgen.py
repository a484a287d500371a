"""Numba map generators for auto-reset: generals-bots' two ``GridFactory`` algorithms, drawn
from the engine's per-board xorshift stream instead of NumPy's (same distribution, so finished
boards get a fresh map at no Python cost; :class:`maps.MapGenerator` is the draw-for-draw copy).

``params`` float64 [6]: mode (1 uniform, 2 generalsio), min side, max side (uniform; as in
generals-bots both sides use the height bounds), mountain density, city density (uniform),
minimum generals BFS distance (generalsio).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .maps import CITY, GENERAL, MOUNTAIN, PLAIN

GEN_POOL, GEN_UNIFORM, GEN_GENERALSIO = 0, 1, 2
MAX_ATTEMPTS = 10_000

_jit = nb.njit(cache=True, nogil=True)
_DR = np.array([-1, 0, 1, 0], dtype=np.int64)
_DC = np.array([0, 1, 0, -1], dtype=np.int64)


@_jit
def _u(rng, b):
    x = rng[b]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[b] = x
    y = x * np.uint64(2685821657736338717)
    return (y >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_jit
def _randint(rng, b, lo, hi):
    """Uniform integer in [lo, hi)."""
    n = hi - lo
    return lo + min(np.int64(_u(rng, b) * n), n - 1)


@_jit
def _bfs(terrain, h, w, si, sj, block_cities, dist, queue):
    """Steps from (si, sj) avoiding mountains (and cities when asked); -1 = unreachable."""
    for i in range(h):
        for j in range(w):
            dist[i, j] = -1
    dist[si, sj] = 0
    queue[0] = si * w + sj
    head, tail = 0, 1
    while head < tail:
        cell = queue[head]
        head += 1
        i, j = cell // w, cell % w
        for d in range(4):
            a, c = i + _DR[d], j + _DC[d]
            if a < 0 or a >= h or c < 0 or c >= w or dist[a, c] >= 0:
                continue
            t = terrain[a, c]
            if t == MOUNTAIN or (block_cities and t == CITY):
                continue
            dist[a, c] = dist[i, j] + 1
            queue[tail] = a * w + c
            tail += 1


@_jit
def _connected(terrain, h, w, gens, dist, queue):
    _bfs(terrain, h, w, gens[0, 0], gens[0, 1], True, dist, queue)
    return dist[gens[1, 0], gens[1, 1]] >= 0


@_jit
def _city(rng, b, terrain, army, i, j):
    terrain[i, j] = CITY
    army[i, j] = 40 + _randint(rng, b, 0, 11)  # digits 0..9 or 'x' (50)


@_jit
def _uniform(rng, b, params, terrain, army, dims, gens, dist, queue):
    lo, hi = np.int64(params[1]), np.int64(params[2])
    pm, pc = params[3], params[4]
    h = _randint(rng, b, lo, hi + 1)
    w = _randint(rng, b, lo, hi + 1)
    terrain[:, :] = MOUNTAIN
    army[:, :] = 0
    for i in range(h):
        for j in range(w):
            u = _u(rng, b)
            if u < 1.0 - pm - pc:
                terrain[i, j] = PLAIN
            elif u < 1.0 - pc:
                terrain[i, j] = MOUNTAIN
            else:
                _city(rng, b, terrain, army, i, j)
    min_d = max(h, w) // 2
    r1, c1 = _randint(rng, b, 0, h), _randint(rng, b, 0, w)
    found = False
    r2 = c2 = 0
    for _ in range(MAX_ATTEMPTS):
        r2, c2 = _randint(rng, b, 0, h), _randint(rng, b, 0, w)
        if abs(r1 - r2) + abs(c1 - c2) >= min_d:
            found = True
            break
    if not found or (r1 == r2 and c1 == c2):
        return False
    gens[0, 0], gens[0, 1], gens[1, 0], gens[1, 1] = r1, c1, r2, c2
    for p in range(2):
        terrain[gens[p, 0], gens[p, 1]] = GENERAL
        army[gens[p, 0], gens[p, 1]] = 1
    dims[0], dims[1] = h, w
    return _connected(terrain, h, w, gens, dist, queue)


@_jit
def _generalsio(rng, b, params, terrain, army, dims, gens, dist, dist2, queue, cells):
    h = _randint(rng, b, 18, 24)
    w = _randint(rng, b, 18, 24)
    if h > terrain.shape[0] or w > terrain.shape[1]:
        return False
    n = h * w
    cities_to_place = 5 + _randint(rng, b, 4, 7)
    num_mountains = np.int64(0.20 * n + 0.02 * n * _u(rng, b))
    terrain[:, :] = MOUNTAIN
    army[:, :] = 0
    for i in range(h):
        for j in range(w):
            terrain[i, j] = PLAIN
    # num_mountains distinct cells (partial Fisher-Yates)
    for k in range(n):
        cells[k] = k
    for k in range(num_mountains):
        m = _randint(rng, b, k, n)
        cells[k], cells[m] = cells[m], cells[k]
        terrain[cells[k] // w, cells[k] % w] = MOUNTAIN
    g1r, g1c = _randint(rng, b, 0, h), _randint(rng, b, 0, w)
    _bfs(terrain, h, w, g1r, g1c, False, dist, queue)
    g2r = -1
    g2c = -1
    for _ in range(4):
        r, c = _randint(rng, b, 0, h), _randint(rng, b, 0, w)
        if dist[r, c] >= params[5]:
            g2r, g2c = r, c
            break
    if g2r < 0:
        return False
    _bfs(terrain, h, w, g2r, g2c, False, dist2, queue)
    # one city within 6 steps of each general
    for which in range(2):
        dd = dist if which == 0 else dist2
        count = 0
        for i in range(h):
            for j in range(w):
                if 0 < dd[i, j] <= 6:
                    count += 1
        if count == 0:
            return False
        k = _randint(rng, b, 0, count)
        for i in range(h):
            for j in range(w):
                if 0 < dd[i, j] <= 6:
                    if k == 0:
                        _city(rng, b, terrain, army, i, j)
                    k -= 1
        cities_to_place -= 1
    # the rest converted from mountains
    nm = 0
    for i in range(h):
        for j in range(w):
            if terrain[i, j] == MOUNTAIN:
                cells[nm] = i * w + j
                nm += 1
    if nm < cities_to_place:
        return False
    for k in range(cities_to_place):
        m = _randint(rng, b, k, nm)
        cells[k], cells[m] = cells[m], cells[k]
        _city(rng, b, terrain, army, cells[k] // w, cells[k] % w)
    # balanced open land within 5 steps of both generals
    n1 = 0
    n2 = 0
    for i in range(h):
        for j in range(w):
            if terrain[i, j] == PLAIN:
                if 0 < dist[i, j] <= 5:
                    n1 += 1
                if 0 < dist2[i, j] <= 5:
                    n2 += 1
    if abs(n1 - n2) > 10:
        return False
    gens[0, 0], gens[0, 1], gens[1, 0], gens[1, 1] = g1r, g1c, g2r, g2c
    for p in range(2):
        terrain[gens[p, 0], gens[p, 1]] = GENERAL
        army[gens[p, 0], gens[p, 1]] = 1
    dims[0], dims[1] = h, w
    return _connected(terrain, h, w, gens, dist, queue)


@_jit
def generate_map(rng, b, params, terrain, army, dims, gens):
    """Write a fresh starting map into ``terrain``/``army`` [S, S] (padding = mountain),
    ``dims`` [2], ``gens`` [2, 2]; returns False if MAX_ATTEMPTS draws all failed."""
    S0, S1 = terrain.shape
    dist = np.empty((S0, S1), np.int64)
    dist2 = np.empty((S0, S1), np.int64)
    queue = np.empty(S0 * S1, np.int64)
    cells = np.empty(S0 * S1, np.int64)
    mode = np.int64(params[0])
    for _ in range(MAX_ATTEMPTS):
        if mode == GEN_UNIFORM:
            ok = _uniform(rng, b, params, terrain, army, dims, gens, dist, queue)
        else:
            ok = _generalsio(rng, b, params, terrain, army, dims, gens, dist, dist2, queue,
                             cells)
        if ok:
            return True
    return False
