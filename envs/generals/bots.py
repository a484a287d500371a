"""Scripted Generals.io bots, batched in Numba over the engine's compact observations.

Each bot reads ``obs [N, 2, S, S]`` (compact cells, see :mod:`.encoding`), ``masks
[N, 2, S, S, 4]`` and ``scalars [N, 2, 5]`` and writes ``actions [N, 2, 5]`` for the players
selected by ``seats`` (a bool [2] array; the other rows are left untouched), so a bot can fill
the opponent's seat of a learner, or both seats in bot-vs-bot play.

- ``random``: generals-bots' ``RandomAgent``: a uniformly random valid move; pass with p = 0.05,
  split (half) with p = 0.25; pass when no move is valid.
- ``expander``: generals-bots' ``ExpanderAgent``: a random move that captures an enemy cell if
  any (source army > target army + 1), else one that captures a neutral cell, else random.
- ``general``: a stronger scripted bot. It remembers the enemy general once seen; grabs a
  neutral city (or the general) when a neighbouring stack can take it; from tick
  ``CONVOY_FROM`` = 25 it convoys a stack along a BFS path towards the enemy general or, until
  found, its likely place (fog >= ``FAR`` = 20 steps from its own general next to enemy land,
  else enemy land, else such fog, else any fog), capturing on the way; before that, and with
  no stack able to step, it expands like ``expander``, preferring cells far from its own
  general; with nothing to capture it walks a stack one step along a BFS towards the fog.
  Convoy and gather pick the stack by one rule (:func:`_advance`): the largest with a step
  that gets closer (the general counts two thirds of its army and moves half, a garrison).
  It draws no random numbers: ties go to the first move in scan order, so its move is a
  function of its observation and memory (imitable).

``random`` and ``expander`` draw from a per-(board, player) xorshift RNG ``rng`` uint64 [N, 2];
``general`` keeps its memory in ``mem`` int32 [N, 2, 2] (the enemy general's position per
board and player), reset when a board's game restarts (``scalars[..., 4] == 0``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .encoding import (
    C_ENEMY,
    C_ENEMY_CITY,
    C_ENEMY_GENERAL,
    C_FOG,
    C_FOG_OBSTACLE,
    C_MOUNTAIN,
    C_NEUTRAL,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_CITY,
    C_OWN_GENERAL,
    CODE_BITS,
    CODE_MASK,
)

BOTS = ("random", "expander", "general")
DR = np.array([-1, 1, 0, 0], dtype=np.int64)
DC = np.array([0, 0, -1, 1], dtype=np.int64)

__all__ = ["BOTS", "Bot", "bot_actions"]

_jit = nb.njit(cache=True, nogil=True)
FAR = 20  # generalsio maps' minimum BFS distance between the generals (maps.MapGenerator)
CONVOY_FROM = 25  # the tick from which stacks convoy (before it: expansion only)


@_jit
def _rand(rng, b, p):
    x = rng[b, p]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[b, p] = x
    y = x * np.uint64(2685821657736338717)
    return (y >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@_jit
def _randint(rng, b, p, n):
    return min(np.int64(_rand(rng, b, p) * n), n - 1)


@_jit
def _pass(out):
    out[0] = 1
    out[1] = 0
    out[2] = 0
    out[3] = 0
    out[4] = 0


@_jit
def _move(out, r, c, d, split):
    out[0] = 0
    out[1] = r
    out[2] = c
    out[3] = d
    out[4] = split


@_jit
def _move_key(out, key, S1):
    """The whole-army move ``key = (row * S1 + col) * 4 + direction`` (the scans' keys)."""
    cell, d = divmod(key, 4)
    r, c = divmod(cell, S1)
    _move(out, r, c, d, 0)


@_jit
def _random_one(m32, rng, b, p, out, pass_prob, split_prob):
    """Uniform valid move: count the set mask bytes, draw k, find the k-th."""
    S0, S1 = m32.shape
    count = 0
    for i in range(S0):
        for j in range(S1):
            v = m32[i, j]
            if v:
                # numba widens the product, so mask the byte sum explicitly
                count += (((v & np.uint32(0x01010101)) * np.uint32(0x01010101)) >> np.uint32(24)) \
                    & np.uint32(0xFF)
    if count == 0:
        _pass(out)
        return
    k = _randint(rng, b, p, count)
    to_pass = 1 if _rand(rng, b, p) <= pass_prob else 0
    split = 1 if _rand(rng, b, p) <= split_prob else 0
    for i in range(S0):
        for j in range(S1):
            v = m32[i, j]
            if v:
                for d in range(4):
                    if (v >> np.uint32(8 * d)) & np.uint32(1):
                        if k == 0:
                            _move(out, i, j, d, split)
                            out[0] = to_pass
                            return
                        k -= 1
    _pass(out)  # unreachable when count is right


@_jit
def _expander_one(obs, m4, rng, b, p, out):
    S0, S1 = obs.shape
    n_opp = 0
    n_neu = 0
    n_all = 0
    pick_opp = -1
    pick_neu = -1
    pick_all = -1
    for i in range(S0):
        for j in range(S1):
            if not (m4[i, j, 0] | m4[i, j, 1] | m4[i, j, 2] | m4[i, j, 3]):
                continue
            a = obs[i, j] >> CODE_BITS
            for d in range(4):
                if not m4[i, j, d]:
                    continue
                key = (i * S1 + j) * 4 + d
                n_all += 1
                if _randint(rng, b, p, n_all) == 0:
                    pick_all = key
                v = obs[i + DR[d], j + DC[d]]
                code = v & CODE_MASK
                if a > (v >> CODE_BITS) + 1:
                    if code == C_ENEMY or code == C_ENEMY_CITY or code == C_ENEMY_GENERAL:
                        n_opp += 1
                        if _randint(rng, b, p, n_opp) == 0:
                            pick_opp = key
                    elif code == C_NEUTRAL or code == C_NEUTRAL_CITY:
                        n_neu += 1
                        if _randint(rng, b, p, n_neu) == 0:
                            pick_neu = key
    pick = pick_opp if pick_opp >= 0 else (pick_neu if pick_neu >= 0 else pick_all)
    if pick < 0:
        _pass(out)
        return
    _move_key(out, pick, S1)


@_jit
def _bfs(obs, sources_r, sources_c, n_src, dist, queue):
    """Multi-source BFS over cells that are not (visible or fogged) obstacles: ``dist`` [S0, S1]
    gets the steps from the nearest source (sources count even on an obstacle), ``1 << 30``
    where none is reachable; ``queue`` is int64 scratch of S0 * S1 (or more).

    It walks a flat copy of the board framed by blocked cells, where a cell holds -1
    (obstacle), ``1 << 30`` (open, not reached) or its distance, so a neighbour costs one
    compare and no bounds checks: ~3x faster than a 2-D BFS with bounds checks, and it runs
    5 times per agent seat and tick (``agent_input``) and up to 3 times per ``general`` move.
    """
    S0, S1 = obs.shape
    W = S1 + 2
    big = 1 << 30
    grid = np.empty((S0 + 2) * W, np.int64)
    grid[:W] = -1
    grid[(S0 + 1) * W:] = -1
    for i in range(S0):
        row = (i + 1) * W
        grid[row] = -1
        grid[row + W - 1] = -1
        for j in range(S1):
            code = obs[i, j] & CODE_MASK
            grid[row + 1 + j] = -1 if (code == C_MOUNTAIN or code == C_FOG_OBSTACLE) else big
    head = 0
    tail = 0
    for k in range(n_src):
        c = (sources_r[k] + 1) * W + sources_c[k] + 1
        grid[c] = 0
        queue[tail] = c
        tail += 1
    while head < tail:
        c = queue[head]
        head += 1
        nd = grid[c] + 1
        for n in (c - W, c + W, c - 1, c + 1):
            if grid[n] > nd:  # open and not yet reached (obstacles hold -1)
                grid[n] = nd
                queue[tail] = n
                tail += 1
    for i in range(S0):
        row = (i + 1) * W + 1
        for j in range(S1):
            g = grid[row + j]
            dist[i, j] = big if g < 0 else g


@_jit
def _next_to_enemy_land(obs, i, j):
    S0, S1 = obs.shape
    for d in range(4):
        a = i + DR[d]
        c = j + DC[d]
        if 0 <= a < S0 and 0 <= c < S1:
            code = obs[a, c] & CODE_MASK
            if code == C_ENEMY or code == C_ENEMY_CITY:
                return True
    return False


@_jit
def _advance(obs, m4, dist, out):
    """Step one stack towards ``dist``'s sources; False if no stack can (convoy and gather).

    Of the own stacks with a step that lowers ``dist`` (onto own land, a cell the stack can
    take, or fog), the one with the most army to spare (the general counts two thirds of its
    army and moves half, keeping a garrison) takes its lowest-``dist`` step. Ties go to the
    first stack and direction in scan order.
    """
    S0, S1 = obs.shape
    best = -1
    ba = 1  # a stack of 1 cannot move
    for i in range(S0):
        for j in range(S1):
            if not (m4[i, j, 0] | m4[i, j, 1] | m4[i, j, 2] | m4[i, j, 3]):
                continue
            a = obs[i, j] >> CODE_BITS
            if (obs[i, j] & CODE_MASK) == C_OWN_GENERAL:
                a = a - a // 3
            if a <= ba:
                continue
            bd = -1
            bdist = dist[i, j]
            for d in range(4):
                if not m4[i, j, d]:
                    continue
                a2 = i + DR[d]
                c2 = j + DC[d]
                if dist[a2, c2] >= bdist:
                    continue
                v = obs[a2, c2]
                code = v & CODE_MASK
                if (code >= C_OWN and code <= C_OWN_GENERAL) or a - 1 > (v >> CODE_BITS) \
                        or code == C_FOG:
                    bdist = dist[a2, c2]
                    bd = d
            if bd >= 0:
                ba = a
                best = (i * S1 + j) * 4 + bd
    if best < 0:
        return False
    cell, d = divmod(best, 4)
    r, c = divmod(cell, S1)
    _move(out, r, c, d, 1 if (obs[r, c] & CODE_MASK) == C_OWN_GENERAL else 0)
    return True


@_jit
def _attack_target(obs, er, ec, own_dist, src_r, src_c):
    """The cells a convoy of the ``general`` bot walks to, into ``src_r``/``src_c``; returns
    how many (0: none). The enemy general (``er``, ``ec``; -1 if never seen) if known, else the
    first non-empty of (a search)
    0: fog cells >= FAR steps from the own general (``own_dist``: :func:`_bfs` from it, all
       1 << 30 without one) next to visible enemy land
       (the enemy land leads to its general, which generalsio maps place >= 20 BFS steps away),
    1: visible enemy cells, 2: fog cells >= FAR steps from the own general, 3: fog cells.
    With 1 and 3 only (nearest enemy cell, else nearest fog) the bot found the enemy general at
    a median tick ~300 against expander and scored 75-78 %; with this search 88-89 %. The
    league agent's input plane 21 is the walking distance to these cells."""
    S0, S1 = obs.shape
    n_src = 0
    if er >= 0:
        src_r[0] = er
        src_c[0] = ec
        return 1
    for want in range(4):
        for i in range(S0):
            for j in range(S1):
                code = obs[i, j] & CODE_MASK
                if want == 1:
                    ok = code == C_ENEMY or code == C_ENEMY_CITY
                else:
                    ok = code == C_FOG and (want == 3 or FAR <= own_dist[i, j] < (1 << 30))
                    if ok and want == 0:
                        ok = _next_to_enemy_land(obs, i, j)
                if ok:
                    src_r[n_src] = i
                    src_c[n_src] = j
                    n_src += 1
        if n_src > 0:
            break
    return n_src


_CAPTURE, _EXPAND, _MERGE = 0, 1, 2  # what _best_scored_move scores


@_jit
def _move_score(kind, a, v, r2, c2, gr, gc):
    """The score of moving a stack of ``a`` onto cell (r2, c2) holding ``v`` for step ``kind``
    of the ``general`` bot; -inf where the step would not take that move."""
    code = v & CODE_MASK
    army = v >> CODE_BITS
    if kind == _CAPTURE:  # the enemy general, else the weakest city, a neighbour can take
        if a - 1 > army:
            if code == C_ENEMY_GENERAL:
                return 1e9
            if code == C_NEUTRAL_CITY or code == C_ENEMY_CITY:
                return 1e6 - army
        return -np.inf
    if kind == _EXPAND:  # a plain cell with the smallest stack, far from the own general
        if (code == C_NEUTRAL or code == C_ENEMY) and a - 1 > army:
            return 1e6 - 10.0 * a + abs(r2 - gr) + abs(c2 - gc) + (5e5 if code == C_ENEMY
                                                                   else 0.0)
        return -np.inf
    if code == C_OWN or code == C_OWN_CITY:  # _MERGE: the largest stack into its largest
        return a + army * 0.01  # own neighbour
    return -np.inf


@_jit
def _best_scored_move(obs, m4, kind, gr, gc, floor):
    """The legal move with the highest :func:`_move_score` above ``floor``, as a move key
    (-1 if none); ties go to the first move in scan order (row, column, then up/down/left/
    right), so the choice is a function of the observation."""
    S0, S1 = obs.shape
    best = -1
    best_score = floor
    for i in range(S0):
        for j in range(S1):
            if not (m4[i, j, 0] | m4[i, j, 1] | m4[i, j, 2] | m4[i, j, 3]):
                continue
            a = obs[i, j] >> CODE_BITS
            for d in range(4):
                if not m4[i, j, d]:
                    continue
                r2 = i + DR[d]
                c2 = j + DC[d]
                s = _move_score(kind, a, obs[r2, c2], r2, c2, gr, gc)
                if s > best_score:
                    best_score = s
                    best = (i * S1 + j) * 4 + d
    return best


@_jit
def _general_one(obs, m4, t, b, p, out, mem, dist, queue, src_r, src_c):
    S0, S1 = obs.shape
    # remember the enemy general; find own general
    gr = -1
    gc = -1
    for i in range(S0):
        for j in range(S1):
            code = obs[i, j] & CODE_MASK
            if code == C_ENEMY_GENERAL:
                mem[b, p, 0] = i
                mem[b, p, 1] = j
            elif code == C_OWN_GENERAL and gr < 0:
                gr = i
                gc = j
    # 1. capture the enemy general or a city if a neighbouring stack can
    best = _best_scored_move(obs, m4, _CAPTURE, gr, gc, -1.0)
    if best >= 0:
        _move_key(out, best, S1)
        return
    # 2. target: the enemy general if known, else where it likely is (_attack_target)
    n_src = 0
    if gr >= 0:
        src_r[0] = gr
        src_c[0] = gc
        n_src = 1
    if mem[b, p, 0] < 0:
        _bfs(obs, src_r, src_c, n_src, dist, queue)  # the own general's distances
    n_src = _attack_target(obs, mem[b, p, 0], mem[b, p, 1], dist, src_r, src_c)
    if n_src > 0 and t >= CONVOY_FROM:
        # 3. convoy: the stack with the most army to spare steps towards the target (from
        # tick CONVOY_FROM on: convoying only in ticks 14-49 of every 50 drew more games)
        _bfs(obs, src_r, src_c, n_src, dist, queue)
        if _advance(obs, m4, dist, out):
            return
    # 4. expand: capture the neutral/enemy plain cell reachable with the smallest stack,
    # preferring cells far from the own general
    best = _best_scored_move(obs, m4, _EXPAND, gr, gc, -1e18)
    if best >= 0:
        _move_key(out, best, S1)
        return
    # 5. gather: nothing to capture, so the same rule as the convoy walks a stack one step
    # towards the nearest fog (the agent's distance plane 17), towards land to take. A random
    # direction here taught a BC clone to average, and walk there and back.
    n_src = 0
    for i in range(S0):
        for j in range(S1):
            if (obs[i, j] & CODE_MASK) == C_FOG:
                src_r[n_src] = i
                src_c[n_src] = j
                n_src += 1
    _bfs(obs, src_r, src_c, n_src, dist, queue)
    if _advance(obs, m4, dist, out):
        return
    # no stack can step closer: merge the largest stack into its largest own neighbour
    best = _best_scored_move(obs, m4, _MERGE, gr, gc, -1.0)
    if best < 0:
        _pass(out)
        return
    _move_key(out, best, S1)


@_jit
def _act_board(kind, b, obs, masks, masks32, scalars, seats, rng, mem, out, pass_prob, split_prob,
               dist, queue, src_r, src_c):
    for p in range(2):
        if not seats[p]:
            continue
        if scalars[b, p, 4] == 0:
            mem[b, p, 0] = -1
            mem[b, p, 1] = -1
        if kind == 0:
            _random_one(masks32[b, p], rng, b, p, out[b, p], pass_prob, split_prob)
        elif kind == 1:
            _expander_one(obs[b, p], masks[b, p], rng, b, p, out[b, p])
        else:
            _general_one(obs[b, p], masks[b, p], scalars[b, p, 4], b, p, out[b, p],
                         mem, dist, queue, src_r, src_c)


@nb.njit(cache=True, nogil=True)
def bot_actions(kind, obs, masks, masks32, scalars, seats, rng, mem, out, pass_prob=0.05,
                split_prob=0.25):
    """Fill ``out[b, p]`` for every board ``b`` and seated player ``p`` (``seats[p]``).

    ``masks32`` is the uint32 [N, 2, S, S] view of ``masks`` (one word per cell).
    ``kind`` 0 random, 1 expander, 2 general; ``mem`` int32 [N, 2, 2] bot memory (the enemy
    general's position, -1 when unknown; reset here when the tick scalar is 0).
    """
    S0, S1 = obs.shape[2], obs.shape[3]
    dist = np.empty((S0, S1), np.int64)
    queue = np.empty(S0 * S1, np.int64)
    src_r = np.empty(S0 * S1, np.int64)
    src_c = np.empty(S0 * S1, np.int64)
    for b in range(obs.shape[0]):
        _act_board(kind, b, obs, masks, masks32, scalars, seats, rng, mem, out, pass_prob,
                   split_prob, dist, queue, src_r, src_c)


@nb.njit(cache=True, nogil=True, parallel=True)
def bot_actions_parallel(kind, obs, masks, masks32, scalars, seats, rng, mem, out,
                         pass_prob=0.05, split_prob=0.25):
    """:func:`bot_actions` with boards spread over Numba's thread pool."""
    S0, S1 = obs.shape[2], obs.shape[3]
    for b in nb.prange(obs.shape[0]):
        dist = np.empty((S0, S1), np.int64)
        queue = np.empty(S0 * S1, np.int64)
        src_r = np.empty(S0 * S1, np.int64)
        src_c = np.empty(S0 * S1, np.int64)
        _act_board(kind, b, obs, masks, masks32, scalars, seats, rng, mem, out, pass_prob,
                   split_prob, dist, queue, src_r, src_c)


class Bot:
    """A named bot for N boards: ``Bot("general", n).act(obs, masks, scalars, seats, out)``;
    ``parallel=True`` spreads the boards over Numba's threads (results are identical: each
    board and player has its own random stream)."""

    def __init__(self, name: str, num_boards: int, seed: int | None = None,
                 parallel: bool = False):
        if name not in BOTS:
            raise ValueError(f"unknown bot {name!r}; choose from {BOTS}")
        self.name = name
        self.kind = BOTS.index(name)
        self.num_boards = num_boards
        st = np.random.SeedSequence(seed).generate_state(2 * num_boards, np.uint64)
        self.rng = st.reshape(num_boards, 2).copy()
        self.rng[self.rng == 0] = 1
        self.mem = np.full((num_boards, 2, 2), -1, np.int32)
        self.parallel = parallel

    def act(self, obs, masks, scalars, seats=(True, True), out=None):
        """Write (and return) actions int32 [N, 2, 5] for the seated players."""
        if out is None:
            out = np.zeros((self.num_boards, 2, 5), np.int32)
            out[:, :, 0] = 1
        masks = np.ascontiguousarray(masks, dtype=np.uint8)
        if masks.ndim != 5 or masks.shape[-1] != 4 or masks.shape[0] != self.num_boards:
            raise ValueError(f"masks must be uint8 [{self.num_boards}, 2, S, S, 4], got "
                             f"{masks.shape}")
        m32 = masks.view(np.uint32)[..., 0]
        fn = bot_actions_parallel if self.parallel else bot_actions
        fn(self.kind, obs, masks, m32, scalars, np.asarray(seats, np.bool_), self.rng, self.mem,
           out)
        return out
