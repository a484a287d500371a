"""The league agent's input planes: compact observation + memory features + time phase +
walking distances to the targets of an attack.

:class:`AgentFeatures` owns a :class:`MemoryFeatures` for ``N`` boards x ``P`` players and
writes, for any list of (board, player) seats, float32 planes ``[K, C, S, S]`` scaled to O(1)
(scales after the 2025 agent, arXiv 2507.06825: armies / 250, land / 100, time / 500):

=========  =====================================================================
channels   content
=========  =====================================================================
0-2        own, enemy, neutral army on the cell (/ 250; 0 under fog)
3-10       generals-bots' 8 boolean maps: generals, cities, mountains, neutral
           cells, owned cells, opponent cells, fog cells, structures in fog
11-14      own land / 100, own army / 250, enemy land / 100, enemy army / 250
15-16      time phase: tick / 500, (tick mod 50) / 50 (the next land growth)
17-19      walking distance / 48 (capped at 1; 1 where no target is reachable) from
           the nearest fog cell, the nearest visible enemy cell, the remembered
           enemy general (BFS around mountains and fogged obstacles)
20         walking distance / 48 from the own general
21         walking distance / 48 to the enemy general's likely place: the remembered
           general, else the ``general`` bot's search (``bots._attack_target``: fog
           >= 20 steps from the own general next to enemy land, else enemy cells, ...)
22-        memory (:mod:`.memory`): seen, mountain, city, enemy general, last-seen
           enemy army / 250, age / 500, own then enemy army deltas / 250
=========  =====================================================================

The distance planes are what a convoy needs: a stack steps to the neighbour with the smaller
distance, which a small CNN cannot work out around mountains from 20 cells away. A BC clone of
the ``general`` bot (which walks its stacks along such a BFS) without them picked the teacher's
stack but another direction on a third of its convoy moves. With them (same data, 1 epoch)
held-out top-1 barely moved (0.455 -> 0.459), but the clone found the enemy general in more
games and won more of them against ``random``: sampling, 5 -> 17 of 100 games (14 -> 33 with
``apps.generals.agent``'s ban on moving straight back).

Planes 20-21 came with input layout 2 (:data:`INPUT_LAYOUT`). Without them a BC clone of the
``general`` bot could not see its teacher's search target, a set of fog cells defined by their
walking distance from the own general, and DAgger rounds on that clone lowered its wins (the
teacher's labels pointed where the clone's inputs gave no reason to go). A layout-1 network
keeps its outputs when widened to layout 2 with zero weights on the new planes
(:func:`widen_input_layout`).

One Numba pass writes the selected seats straight into the output (no [N, 2, ...] float
intermediate): the learner's seats and the opponent's seats are built as two calls.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .bots import FAR, _attack_target, _bfs
from .encoding import (
    _PLANE_OF_CODE,
    C_ENEMY,
    C_ENEMY_CITY,
    C_FOG,
    C_FOG_OBSTACLE,
    C_MOUNTAIN,
    C_NEUTRAL,
    C_NEUTRAL_CITY,
    C_OWN,
    C_OWN_GENERAL,
    CODE_BITS,
    CODE_MASK,
)
from .memory import MemoryFeatures

__all__ = ["INPUT_LAYOUT", "AgentFeatures", "agent_planes_reference", "num_agent_channels",
           "widen_input_layout"]

INPUT_LAYOUT = 2  # 1: planes 0-19 then memory; 2: + planes 20-21 (own general, attack target)
BASE_CHANNELS = 22
_NEW_IN_LAYOUT = {2: (20, 2)}  # layout -> (first new plane, how many)
ARMY, LAND, TIME, DIST = 1 / 250, 1 / 100, 1 / 500, 1 / 48


def num_agent_channels(history: int = 7, layout: int = INPUT_LAYOUT) -> int:
    if layout not in range(1, INPUT_LAYOUT + 1):
        raise ValueError(f"unknown Generals input layout {layout} (this gristmill knows 1.."
                         f"{INPUT_LAYOUT})")
    return BASE_CHANNELS - sum(n for v, (_, n) in _NEW_IN_LAYOUT.items() if v > layout) \
        + 6 + 2 * history


def widen_input_layout(weight: np.ndarray, layout: int) -> np.ndarray:
    """The first conv's ``weight [out, C, kh, kw]`` for input ``layout``, as the same function
    of layout :data:`INPUT_LAYOUT` planes: zero columns where the newer layouts inserted planes,
    so a network trained on the old layout answers exactly as before and fine-tuning can learn
    to use the new planes."""
    num_agent_channels(1, layout)  # validates
    for v in range(layout + 1, INPUT_LAYOUT + 1):
        at, n = _NEW_IN_LAYOUT[v]
        zeros = np.zeros((weight.shape[0], n) + weight.shape[2:], weight.dtype)
        weight = np.concatenate([weight[:, :at], zeros, weight[:, at:]], 1)
    return weight


@nb.njit(cache=True, nogil=True)
def _distance_from(obs, src_r, src_c, n, dist, queue, out):
    """``out[i, j]`` = walking distance x DIST (capped at 1) from the nearest of the ``n``
    cells ``(src_r, src_c)``, through cells that are not mountains or fogged obstacles; 1 where
    none is reachable. The BFS is the ``general`` bot's own (its convoys walk these distances).
    ``dist``/``queue`` are int64 scratch of S0 x S1 / S0 * S1."""
    S0, S1 = obs.shape
    _bfs(obs, src_r, src_c, n, dist, queue)
    for i in range(S0):
        for j in range(S1):
            out[i, j] = min(dist[i, j] * DIST, 1.0)


@nb.njit(cache=True, nogil=True)
def _distance(obs, source, dist, queue, src_r, src_c, out):
    """:func:`_distance_from` the cells where ``source`` is true (``src_r``/``src_c`` int64
    scratch of S0 * S1)."""
    S0, S1 = obs.shape
    n = 0
    for i in range(S0):
        for j in range(S1):
            if source[i, j]:
                src_r[n] = i
                src_c[n] = j
                n += 1
    _distance_from(obs, src_r, src_c, n, dist, queue, out)


@nb.njit(cache=True, nogil=True)
def _general_planes(ob, remembered, dist, queue, src_r, src_c, o):
    """Planes 20 (from the own general) and 21 (to the attack target) of one seat;
    ``remembered`` = the memory's enemy-general flags [S, S]."""
    S0, S1 = ob.shape
    gr, gc, er, ec = -1, -1, -1, -1
    for i in range(S0):
        for j in range(S1):
            if (ob[i, j] & CODE_MASK) == C_OWN_GENERAL and gr < 0:
                gr, gc = i, j
            if remembered[i, j] != 0 and er < 0:
                er, ec = i, j
    n = 0
    if gr >= 0:
        src_r[0], src_c[0] = gr, gc
        n = 1
    _distance_from(ob, src_r, src_c, n, dist, queue, o[20])  # leaves the BFS in dist
    n = _attack_target(ob, er, ec, dist, src_r, src_c)
    _distance_from(ob, src_r, src_c, n, dist, queue, o[21])


@nb.njit(cache=True, nogil=True)
def _write(boards, players, obs, scalars, table, flags, enemy_army, age, deltas, out):
    S0, S1 = obs.shape[2], obs.shape[3]
    K = deltas.shape[2]
    M = BASE_CHANNELS
    dist = np.empty((S0, S1), np.int64)
    queue = np.empty(S0 * S1, np.int64)
    src_r = np.empty(S0 * S1, np.int64)
    src_c = np.empty(S0 * S1, np.int64)
    source = np.empty((S0, S1), np.bool_)
    for k in range(boards.shape[0]):
        b = boards[k]
        p = players[k]
        sc = scalars[b, p]
        t = sc[4]
        o = out[k]
        ob = obs[b, p]
        for q in range(3):
            for i in range(S0):
                for j in range(S1):
                    c = ob[i, j] & CODE_MASK
                    if q == 0:
                        source[i, j] = c == C_FOG
                    elif q == 1:
                        source[i, j] = c >= C_ENEMY
                    else:
                        source[i, j] = flags[b, p, 3, i, j] != 0
            _distance(ob, source, dist, queue, src_r, src_c, o[17 + q])
        _general_planes(ob, flags[b, p, 3], dist, queue, src_r, src_c, o)
        # plane by plane: each loop writes one contiguous [S, S] plane (cell by cell across
        # all 41 planes strided every store by a plane and took 4x as long)
        for i in range(S0):
            for j in range(S1):
                v = ob[i, j]
                c = v & CODE_MASK
                a = np.float32((v >> CODE_BITS) * ARMY)
                o[0, i, j] = a if (c >= C_OWN and c <= C_OWN_GENERAL) else 0.0
                o[1, i, j] = a if c >= C_ENEMY else 0.0
                o[2, i, j] = a if (c == C_NEUTRAL or c == C_NEUTRAL_CITY) else 0.0
        for q in range(8):
            for i in range(S0):
                for j in range(S1):
                    o[3 + q, i, j] = table[ob[i, j] & CODE_MASK, q]
        o[11] = sc[0] * LAND
        o[12] = sc[1] * ARMY
        o[13] = sc[2] * LAND
        o[14] = sc[3] * ARMY
        o[15] = t * TIME
        o[16] = (t % 50) / 50.0
        for q in range(4):
            for i in range(S0):
                for j in range(S1):
                    o[M + q, i, j] = flags[b, p, q, i, j]
        for i in range(S0):
            for j in range(S1):
                o[M + 4, i, j] = enemy_army[b, p, i, j] * ARMY
                o[M + 5, i, j] = (age[b, p, i, j] if flags[b, p, 0, i, j] else t) * TIME
        for q in range(K):
            if q < t:
                slot = (t - q) % K
                for i in range(S0):
                    for j in range(S1):
                        o[M + 6 + q, i, j] = deltas[b, p, slot, 0, i, j] * ARMY
                        o[M + 6 + K + q, i, j] = deltas[b, p, slot, 1, i, j] * ARMY
            else:
                o[M + 6 + q] = 0.0
                o[M + 6 + K + q] = 0.0


class AgentFeatures:
    """Memory plus plane building for ``num_boards`` x ``players`` seats of side ``pad_to``.

    Call :meth:`update` with every tick's compact ``obs [N, P, S, S]`` and ``scalars [N, P, 5]``
    (memory resets itself where the tick is 0), then :meth:`planes` for the seats to act.
    """

    def __init__(self, num_boards: int, pad_to: int = 24, history: int = 7, players: int = 2):
        self.memory = MemoryFeatures(num_boards, pad_to, history, players)
        self.num_channels = num_agent_channels(history)
        self.pad_to = pad_to
        self._obs: np.ndarray | None = None
        self._scalars: np.ndarray | None = None

    def update(self, obs: np.ndarray, scalars: np.ndarray) -> None:
        self.memory.update(obs, scalars)
        self._obs, self._scalars = obs, scalars

    def planes(self, boards: np.ndarray, players: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``[K, C, S, S]`` for seats ``(boards[k], players[k])`` of the last update."""
        if self._obs is None:
            raise RuntimeError("AgentFeatures.planes before the first update()")
        boards = np.ascontiguousarray(boards, np.int64)
        players = np.ascontiguousarray(players, np.int64)
        if boards.shape != players.shape or boards.ndim != 1:
            raise ValueError(f"boards and players must be equal 1-D arrays, got {boards.shape} "
                             f"and {players.shape}")
        n, P = self.memory.shape[:2]
        if boards.size and (boards.min() < 0 or boards.max() >= n or players.min() < 0
                            or players.max() >= P):
            raise IndexError(f"seat out of range: boards 0..{n - 1}, players 0..{P - 1}")
        S = self.pad_to
        shape = (boards.size, self.num_channels, S, S)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 {shape}, got {out.dtype} "
                             f"{out.shape}")
        m = self.memory
        _write(boards, players, self._obs, self._scalars, _PLANE_OF_CODE, m.flags, m.enemy_army,
               m.age, m.deltas, out)
        return out


def _steps_reference(code: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Plain-Python multi-source BFS: steps from the nearest ``source`` cell, inf where none is
    reachable (the test oracle)."""
    from collections import deque

    S0, S1 = code.shape
    dist = np.full((S0, S1), np.inf)
    todo = deque()
    for i, j in zip(*np.nonzero(source)):
        dist[i, j] = 0
        todo.append((i, j))
    while todo:
        i, j = todo.popleft()
        for a, c in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < S0 and 0 <= c < S1 and dist[a, c] == np.inf and \
                    code[a, c] not in (C_MOUNTAIN, C_FOG_OBSTACLE):
                dist[a, c] = dist[i, j] + 1
                todo.append((a, c))
    return dist


def _distance_reference(code: np.ndarray, source: np.ndarray) -> np.ndarray:
    return np.minimum(_steps_reference(code, source) * DIST, 1.0).astype(np.float32)


def _next_to_reference(cells: np.ndarray) -> np.ndarray:
    """bool [S, S]: the cells with a 4-neighbour in ``cells``."""
    out = np.zeros(cells.shape, bool)
    out[1:] |= cells[:-1]
    out[:-1] |= cells[1:]
    out[:, 1:] |= cells[:, :-1]
    out[:, :-1] |= cells[:, 1:]
    return out


def attack_target_reference(code: np.ndarray, remembered: np.ndarray) -> np.ndarray:
    """Plain-NumPy ``bots._attack_target``: bool [S, S] of the cells a convoy walks to (the
    remembered enemy general, else the search; see there)."""
    if remembered.any():
        out = np.zeros(code.shape, bool)
        out[tuple(np.argwhere(remembered)[0])] = True
        return out
    steps = _steps_reference(code, code == C_OWN_GENERAL)
    far = (steps >= FAR) & (steps < np.inf)
    enemy_land = (code == C_ENEMY) | (code == C_ENEMY_CITY)
    fog = code == C_FOG
    for cells in (fog & far & _next_to_reference(enemy_land), enemy_land, fog & far, fog):
        if cells.any():
            return cells
    return cells


def agent_planes_reference(obs: np.ndarray, scalars: np.ndarray,
                           memory: np.ndarray) -> np.ndarray:
    """Plain-NumPy planes of one seat: compact ``obs [S, S]``, ``scalars [5]`` and the
    :meth:`MemoryFeatures.features` of that seat ``[6 + 2K, S, S]`` (the test oracle)."""
    code, army = obs & CODE_MASK, (obs >> CODE_BITS).astype(np.float32)
    S0, S1 = obs.shape
    base = np.zeros((BASE_CHANNELS, S0, S1), np.float32)
    own = (code >= C_OWN) & (code <= C_OWN_GENERAL)
    base[0] = np.where(own, army * ARMY, 0)
    base[1] = np.where(code >= C_ENEMY, army * ARMY, 0)
    base[2] = np.where((code == C_NEUTRAL) | (code == C_NEUTRAL_CITY), army * ARMY, 0)
    base[3:11] = np.moveaxis(_PLANE_OF_CODE[code], -1, 0)
    base[11:15] = (np.array([LAND, ARMY, LAND, ARMY]) * scalars[:4])[:, None, None]
    base[15] = scalars[4] * TIME
    base[16] = (scalars[4] % 50) / 50
    for q, source in enumerate((code == C_FOG, code >= C_ENEMY, memory[3] != 0,
                                code == C_OWN_GENERAL,
                                attack_target_reference(code, memory[3] != 0))):
        base[17 + q] = _distance_reference(code, source)
    mem = memory.astype(np.float32).copy()
    mem[4] *= ARMY
    mem[5] *= TIME
    mem[6:] *= ARMY
    return np.concatenate([base, mem])
